"""File transfers over a real connection: clients that vanish, files that change."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.server import clean_environment, serving

pytestmark = pytest.mark.slow

KEY = "wire-service-key-0123456789abcdef0123456789"


@dataclass
class Live:
    base_url: str
    vfolder_url: str
    root: Path
    staging: Path
    http: httpx.Client

    def usage(self) -> tuple[int, int]:
        body = self.http.get(f"{self.vfolder_url}/usage").json()
        return body["used_bytes"], body["file_count"]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    env = clean_environment(STORAGE_SERVICE_KEYS=KEY)
    with (
        serving(cwd=tmp_path, env=env) as server,
        httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
        ) as http,
    ):
        created = http.post(
            "/v1/vfolders", json={"name": "wire", "volume": "local", "owner_id": "alice"}
        )
        hex_id = uuid.UUID(created.json()["id"]).hex
        volume = tmp_path / "var" / "volumes" / "local"
        yield Live(
            base_url=server.base_url,
            vfolder_url=f"/v1/vfolders/{created.json()['id']}",
            root=volume / hex_id[:2] / hex_id[2:4] / hex_id,
            staging=volume / ".staging",
            http=http,
        )


def test_client_killed_mid_put_leaves_nothing(live: Live) -> None:
    live.http.put(f"{live.vfolder_url}/files/keep.bin", content=b"k" * 100)
    before = live.usage()
    host, port = live.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            (
                f"PUT {live.vfolder_url}/files/partial.bin HTTP/1.1\r\n"
                f"Host: {host}\r\nAuthorization: Bearer {KEY}\r\n"
                f"Content-Length: {64 * 1024 * 1024}\r\n\r\n"
            ).encode()
        )
        for _ in range(8):
            sock.sendall(b"x" * (1024 * 1024))
        # Let the server write some of it to staging before the client dies.
        deadline = time.monotonic() + 10
        while not any(live.staging.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert any(live.staging.iterdir()), "the upload never reached the staging area"
    # The connection is gone: no partial file, no staging garbage, no usage change.
    deadline = time.monotonic() + 10
    while any(live.staging.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(live.staging.iterdir()) == []
    assert sorted(p.name for p in live.root.iterdir()) == ["keep.bin"]
    assert live.usage() == before


def test_a_file_changing_while_read_breaks_the_stream(live: Live) -> None:
    """Never a silently mixed body: the stream is cut and the client sees an error."""
    path = live.root / "changing.bin"
    path.write_bytes(b"a" * (64 * 1024 * 1024))
    received = 0
    with (
        pytest.raises(httpx.HTTPError),
        live.http.stream("GET", f"{live.vfolder_url}/files/changing.bin") as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            if received == 0:
                with path.open("r+b") as out:
                    out.write(b"b")  # same size, new mtime: only the version check sees it
            received += len(chunk)
    assert received < 64 * 1024 * 1024
