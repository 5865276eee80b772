"""Attacks on the connection itself, against a real server over raw sockets: giant or endless
request heads, giant URLs, garbage, and bodies that stall or trickle while holding someone
else's quota. Each is cut by the server with a problem+json answer, and what the request held
(quota reservation, staging file) is released."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.observed import Observations, assert_documented
from tests.support.server import Server, clean_environment, serving

pytestmark = pytest.mark.slow

KEY = "connection-limits-service-key-0123456789abcdef"
SERVICE = {"Authorization": f"Bearer {KEY}"}
MIB = 1024 * 1024
# Long enough that a server process stalled by a loaded machine (uvloop runs due timers before
# it reads what arrived meanwhile) does not cut a connection whose head is already waiting.
HEADER_TIMEOUT = 3.0
BODY_WINDOW = 1.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    after: float  # seconds from the first byte sent to the end of the answer

    def problem(self) -> dict[str, Any]:
        assert self.headers["content-type"] == "application/problem+json", self
        problem: dict[str, Any] = json.loads(self.body)
        assert problem["status"] == self.status
        return problem


SEEN = Observations()


@pytest.fixture(scope="module", autouse=True)
def every_status_seen_here_is_documented() -> Iterator[None]:
    yield
    assert_documented(SEEN)


def _parse(raw: bytes, after: float) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), raw[:200]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), headers, body, after)


class RawClient:
    """One TCP connection that sends exactly what it is told, and reads whatever comes back
    while it is still sending (a server that refuses early closes on the rest)."""

    def __init__(self, server: Server) -> None:
        host, port = server.base_url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.received = b""
        self.closed = threading.Event()
        self.started = time.monotonic()
        self.ended = 0.0
        self.request_line = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.received += chunk
        except OSError:
            pass
        self.ended = time.monotonic()
        self.closed.set()

    def send(self, data: bytes, *, chunk: int = 64 * 1024) -> int:
        """Bytes sent before the server closed the connection."""
        if not self.request_line:
            self.request_line = data.split(b"\r\n", 1)[0][:200].decode("latin-1")
        sent = 0
        try:
            for start in range(0, len(data), chunk):
                self.sock.sendall(data[start : start + chunk])
                sent += len(data[start : start + chunk])
        except OSError:
            pass
        return sent

    def answer(self, within: float) -> Answer:
        assert self.closed.wait(within), f"still open after {within} s: {self.received[:200]!r}"
        answer = _parse(self.received, self.ended - self.started)
        method, _, rest = self.request_line.partition(" ")
        SEEN.add(method, rest.rsplit(" ", 1)[0], answer.status)
        return answer

    def close(self) -> None:
        self.sock.close()
        self._reader.join(timeout=5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cwd = tmp_path_factory.mktemp("limits")
    env = clean_environment(
        STORAGE_SERVICE_KEYS=KEY,
        STORAGE_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        STORAGE_BODY_IDLE_TIMEOUT_SECONDS=str(BODY_WINDOW),
        STORAGE_BODY_MIN_BYTES_PER_SECOND="1000",
    )
    with serving(cwd=cwd, env=env) as server:
        yield server


def _raw(server: Server, data: bytes, *, within: float = 10) -> Answer:
    client = RawClient(server)
    try:
        client.send(data)
        return client.answer(within)
    finally:
        client.close()


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_32_mib_header_is_refused_with_431_before_it_is_read(server: Server) -> None:
    client = RawClient(server)
    try:
        sent = client.send(
            b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (32 * MIB) + b"\r\n\r\n"
        )
        answer = client.answer(within=10)
    finally:
        client.close()
    assert answer.status == 431
    assert answer.problem()["type"] == "/problems/request-header-fields-too-large"
    assert sent < 32 * MIB  # cut while it was still sending
    assert httpx.get(f"{server.base_url}/health/live").status_code == 200


def test_many_small_headers_add_up_to_the_same_bound(server: Server) -> None:
    headers = b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 100) for n in range(1000))
    answer = _raw(server, b"GET /health/live HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert answer.status == 431
    answer.problem()


def test_a_large_but_allowed_head_is_served(server: Server) -> None:
    answer = _raw(
        server,
        b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Ok: "
        + b"a" * (32 * 1024)
        + b"\r\n\r\n",
    )
    assert answer.status == 200, answer


def test_six_endless_heads_do_not_swell_the_server(server: Server) -> None:
    """Six clients each send 16 MiB of one header and never finish it (it was 176 → 435 MiB)."""
    before = _rss_bytes(server.process.pid)
    clients: list[RawClient] = []

    def connect_and_send() -> None:
        # Connected in the sending thread: a connection left idle while the others are set up
        # could meet the head deadline (closed without an answer) instead.
        client = RawClient(server)
        clients.append(client)
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * (16 * MIB))

    threads = [threading.Thread(target=connect_and_send) for _ in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        answers = [c.answer(within=10) for c in clients]
    finally:
        for c in clients:
            c.close()
    assert [a.status for a in answers] == [431] * 6
    assert _rss_bytes(server.process.pid) - before < 24 * MIB


def test_a_100_kib_url_is_refused_with_414(server: Server) -> None:
    answer = _raw(
        server, b"GET /v1/vfolders?q=" + b"a" * (100 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert answer.status == 414
    assert answer.problem()["type"] == "/problems/uri-too-long"


def test_garbage_instead_of_http_is_a_problem_too(server: Server) -> None:
    answer = _raw(server, b"HELLO THERE\r\n\r\n")
    assert answer.status == 400
    assert answer.problem()["type"] == "/problems/malformed-request"


def test_a_head_that_never_ends_is_cut_after_the_header_timeout(server: Server) -> None:
    """Slowloris: a request line and one header, then silence."""
    client = RawClient(server)
    try:
        client.send(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        answer = client.answer(within=HEADER_TIMEOUT + 5)
    finally:
        client.close()
    assert answer.status == 408
    assert answer.problem()["type"] == "/problems/request-timeout"
    assert HEADER_TIMEOUT * 0.9 <= answer.after < HEADER_TIMEOUT + 5


def test_a_head_dripping_one_byte_at_a_time_is_cut_too(server: Server) -> None:
    client = RawClient(server)
    try:
        for byte in b"GET /health/live HTTP/1.1\r\nHost: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx":
            if client.closed.is_set():
                break
            client.send(bytes([byte]))
            time.sleep(0.1)
        answer = client.answer(within=HEADER_TIMEOUT + 5)
    finally:
        client.close()
    assert answer.status == 408


# -- bodies that hold someone else's quota -------------------------------------------


def _as(user: str) -> dict[str, str]:
    return {**SERVICE, "X-Act-As-User": user, "X-Act-As-Groups": "lab"}


def _lab_vfolder_with_a_10_mib_group_quota(server: Server) -> str:
    made = httpx.post(
        f"{server.base_url}/v1/vfolders",
        json={
            "name": f"lab-{uuid.uuid4().hex[:6]}",
            "volume": "local",
            "owner_type": "group",
            "owner_id": "lab",
        },
        headers=SERVICE,
    )
    assert made.status_code == 201, made.text
    limited = httpx.put(
        f"{server.base_url}/v1/quotas/vfolder/{made.json()['id']}",
        json={"limit_bytes": 10 * MIB},
        headers=SERVICE,
    )
    assert limited.status_code == 200, limited.text
    return str(made.json()["id"])


@pytest.fixture
def staging(server: Server) -> Path:
    return server.cwd / "var" / "volumes" / "local" / ".staging"


@pytest.mark.parametrize("pace", ["stalled", "trickling"])
def test_a_slow_put_is_cut_and_gives_back_the_quota_it_held(
    server: Server, staging: Path, pace: str
) -> None:
    """Mallory starts an 8 MiB PUT into the lab's 10 MiB vfolder, then stops sending (or
    sends a byte every 0.2 s). Carol's 8 MiB write is refused while Mallory holds the space;
    the server cuts Mallory after its body timeout, and Carol's write then succeeds."""
    vfolder = _lab_vfolder_with_a_10_mib_group_quota(server)
    path = f"/v1/vfolders/{vfolder}/files/mallory.bin"
    head = f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {8 * MIB}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in _as("mallory").items()) + "\r\n"
    mallory = RawClient(server)
    try:
        mallory.send(head.encode() + b"m" * 4096)
        carol_url = f"{server.base_url}/v1/vfolders/{vfolder}/files/carol.bin"
        deadline = time.monotonic() + 5
        while not list(staging.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)  # Mallory's request has reached the disk
        refused = httpx.put(carol_url, content=b"c" * (8 * MIB), headers=_as("carol"))
        assert refused.status_code == 413, refused.text
        while not mallory.closed.is_set() and time.monotonic() - mallory.started < 30:
            if pace == "trickling":
                mallory.send(b"m")
            time.sleep(0.2)
        answer = mallory.answer(within=1)
    finally:
        mallory.close()
    assert answer.status == 408, answer
    assert answer.problem()["type"] == "/problems/request-timeout"
    assert answer.after < 15

    stored = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the clean-up of the cut request runs in the server
        stored = httpx.put(carol_url, content=b"c" * (8 * MIB), headers=_as("carol"))
        if stored.status_code != 413:
            break
        time.sleep(0.2)
    assert stored is not None and stored.status_code == 201, stored and stored.text
    assert [p.name for p in staging.iterdir() if not p.name.startswith(".probe")] == []
    listed = httpx.get(f"{server.base_url}/v1/vfolders/{vfolder}/list", headers=_as("carol"))
    assert [entry["name"] for entry in listed.json()["items"]] == ["carol.bin"]


def test_a_put_that_keeps_sending_is_never_cut(server: Server, staging: Path) -> None:
    """The body window judges the client, not the server: a steady 3 MiB upload over a few
    windows goes through."""
    vfolder = _lab_vfolder_with_a_10_mib_group_quota(server)
    client = RawClient(server)
    path = f"/v1/vfolders/{vfolder}/files/steady.bin"
    head = f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {3 * MIB}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in _as("carol").items()) + "\r\n"
    try:
        client.send(head.encode())
        for _ in range(12):
            client.send(os.urandom(MIB // 4))
            time.sleep(0.25)
        answer = client.answer(within=10)
    finally:
        client.close()
    assert answer.status == 201, answer


def test_a_stalled_form_upload_is_cut_and_leaves_nothing(server: Server, staging: Path) -> None:
    vfolder = _lab_vfolder_with_a_10_mib_group_quota(server)
    boundary = "x" * 16
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    head = (
        f"POST /v1/vfolders/{vfolder}/upload HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {8 * MIB}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in _as("mallory").items())
        + "\r\n"
    )
    client = RawClient(server)
    try:
        client.send(head.encode() + part + os.urandom(256 * 1024))
        answer = client.answer(within=BODY_WINDOW * 3 + 10)
    finally:
        client.close()
    assert answer.status == 408, answer
    deadline = time.monotonic() + 10
    while [p for p in staging.iterdir() if not p.name.startswith(".probe")]:
        assert time.monotonic() < deadline, list(staging.iterdir())
        time.sleep(0.1)
    usage = httpx.get(f"{server.base_url}/v1/vfolders/{vfolder}/usage", headers=_as("carol"))
    assert usage.json()["used_bytes"] == 0, usage.text
    stored = httpx.put(
        f"{server.base_url}/v1/vfolders/{vfolder}/files/carol.bin",
        content=b"c" * (10 * MIB),
        headers=_as("carol"),
    )
    assert stored.status_code == 201, stored.text  # nothing of the 10 MiB is still reserved
