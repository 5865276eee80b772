"""A client that loses its connection mid-PATCH (tus-js-client and Uppy send a whole file in
one PATCH) keeps what the server received; a server killed mid-PATCH keeps what it fsynced.
Real server processes, raw sockets: the network drop is a real one."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.content.body_writer import BATCH_BYTES
from app.uploads.progress import CHECKPOINT_BYTES
from tests.support.server import Server, clean_environment, serving
from tests.support.tus_wire import tus_patch

pytestmark = pytest.mark.slow

KEY = "tus-interrupted-service-key-0123456789abcdef0123"
AUTH = {"Authorization": f"Bearer {KEY}", "X-Act-As-User": "alice", "Tus-Resumable": "1.0.0"}
MIB = 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(cwd=tmp_path, env=_env()) as running:
        yield running


def _env() -> dict[str, str]:
    return clean_environment(STORAGE_SERVICE_KEYS=KEY, STORAGE_UPLOAD_LOCK_TTL_SECONDS="2")


def _vfolder(base_url: str) -> str:
    created = httpx.post(
        f"{base_url}/v1/vfolders",
        json={"name": f"cut-{secrets.token_hex(3)}", "volume": "local", "owner_id": "alice"},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert created.status_code == 201, created.text
    return f"/v1/vfolders/{created.json()['id']}"


def _create(base_url: str, vfolder: str, length: int, name: str) -> str:
    created = httpx.post(
        f"{base_url}{vfolder}/uploads",
        headers={
            **AUTH,
            "Upload-Length": str(length),
            "Upload-Metadata": "path " + base64.b64encode(name.encode()).decode(),
        },
    )
    assert created.status_code == 201, created.text
    return str(created.headers["location"])


def _send_part_of_a_patch(
    base_url: str, upload: str, *, offset: int, length: int, part: bytes, **headers: str
) -> socket.socket:
    """A PATCH announcing ``length`` bytes of which only ``part`` is sent; the caller drops
    the connection (or the server) whenever it likes."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    sock.sendall(
        (
            f"PATCH {upload} HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {KEY}\r\nX-Act-As-User: alice\r\n"
            "Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {offset}\r\nContent-Length: {length}\r\n{extra}\r\n"
        ).encode()
        + part
    )
    return sock


def _offset(base_url: str, upload: str) -> int:
    head = httpx.head(f"{base_url}{upload}", headers=AUTH)
    assert head.status_code == 200, head.text
    return int(head.headers["upload-offset"])


def _offset_once_settled(base_url: str, upload: str, expected: int) -> int:
    """The server learns of the drop on its next read of the socket: poll a little."""
    deadline = time.monotonic() + 10
    while (offset := _offset(base_url, upload)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return offset


def _patch(base_url: str, upload: str, offset: int, data: bytes) -> httpx.Response:
    return tus_patch(f"{base_url}{upload}", offset, data, headers=AUTH)


def test_a_dropped_patch_keeps_every_byte_the_server_received(server: Server) -> None:
    data = os.urandom(6 * MIB)
    vfolder = _vfolder(server.base_url)
    upload = _create(server.base_url, vfolder, len(data), "whole.bin")
    received = 3 * MIB + 12345  # not a multiple of anything the server batches by
    sock = _send_part_of_a_patch(
        server.base_url, upload, offset=0, length=len(data), part=data[:received]
    )
    time.sleep(0.3)  # the bytes cross the loopback before the connection drops
    sock.close()
    assert _offset_once_settled(server.base_url, upload, received) == received
    # tus-js-client's resume: HEAD, then PATCH the rest from the offset it was told.
    resumed = _patch(server.base_url, upload, received, data[received:])
    assert resumed.status_code == 204, resumed.text
    got = httpx.get(f"{server.base_url}{vfolder}/files/whole.bin", headers=AUTH)
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
    usage = httpx.get(f"{server.base_url}{vfolder}/usage", headers=AUTH).json()
    assert (usage["used_bytes"], usage["file_count"]) == (len(data), 1)


def test_a_dropped_checksummed_patch_keeps_nothing(server: Server) -> None:
    data = os.urandom(2 * MIB)
    vfolder = _vfolder(server.base_url)
    upload = _create(server.base_url, vfolder, len(data), "summed.bin")
    assert _patch(server.base_url, upload, 0, data[:MIB]).status_code == 204
    digest = base64.b64encode(hashlib.sha256(data[MIB:]).digest()).decode()
    sock = _send_part_of_a_patch(
        server.base_url,
        upload,
        offset=MIB,
        length=MIB,
        part=data[MIB : MIB + MIB // 2],
        **{"Upload-Checksum": f"sha256 {digest}"},
    )
    time.sleep(0.3)
    sock.close()
    time.sleep(0.5)  # long enough for the server to have seen the drop and cleaned up
    assert _offset(server.base_url, upload) == MIB  # unverifiable bytes are not kept
    assert _patch(server.base_url, upload, MIB, data[MIB:]).status_code == 204


def test_kill_9_mid_patch_keeps_everything_fsynced(tmp_path: Path) -> None:
    data = os.urandom(32 * MIB)
    sent = 20 * MIB
    with serving(cwd=tmp_path, env=_env()) as server:
        vfolder = _vfolder(server.base_url)
        upload = _create(server.base_url, vfolder, len(data), "killed.bin")
        sock = _send_part_of_a_patch(
            server.base_url, upload, offset=0, length=len(data), part=data[:sent]
        )
        deadline = time.monotonic() + 10  # the server records every CHECKPOINT_BYTES
        while _offset(server.base_url, upload) < sent - CHECKPOINT_BYTES - BATCH_BYTES:
            assert time.monotonic() < deadline, "no checkpoint recorded mid-PATCH"
            time.sleep(0.05)
        server.process.kill()  # kill -9, mid-PATCH, the client still connected
        server.process.wait()
        sock.close()
    with serving(cwd=tmp_path, env=_env()) as restarted:
        offset = _offset(restarted.base_url, upload)
        assert sent - CHECKPOINT_BYTES - BATCH_BYTES <= offset <= sent
        deadline = time.monotonic() + 15  # the killed writer's lease runs out (TTL 2 s)
        resumed = _patch(restarted.base_url, upload, offset, data[offset:])
        while resumed.status_code == 423:
            assert resumed.headers.get("retry-after"), "423 without Retry-After"
            assert time.monotonic() < deadline, "the dead writer's lease never ran out"
            time.sleep(0.25)
            resumed = _patch(restarted.base_url, upload, offset, data[offset:])
        assert resumed.status_code == 204, resumed.text
        got = httpx.get(f"{restarted.base_url}{vfolder}/files/killed.bin", headers=AUTH)
        assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
