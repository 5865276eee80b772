"""Crash and scale-out: acknowledged bytes survive kill -9; any node can resume an upload."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.server import clean_environment, run_cli, serving
from tests.support.services import postgres_schema, redis_url
from tests.support.tus_wire import tus_patch

pytestmark = pytest.mark.slow

KEY = "tus-crash-service-key-0123456789abcdef0123456789"
AUTH = {"Authorization": f"Bearer {KEY}", "X-Act-As-User": "alice", "Tus-Resumable": "1.0.0"}
MIB = 1024 * 1024


def _vfolder(base_url: str) -> str:
    created = httpx.post(
        f"{base_url}/v1/vfolders",
        json={"name": f"crash-{secrets.token_hex(3)}", "volume": "local", "owner_id": "alice"},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    return f"/v1/vfolders/{created.json()['id']}"


def _create(base_url: str, vfolder: str, length: int) -> str:
    created = httpx.post(
        f"{base_url}{vfolder}/uploads",
        headers={**AUTH, "Upload-Length": str(length), "Upload-Metadata": "path YmlnLmJpbg=="},
    )
    assert created.status_code == 201, created.text
    return str(created.headers["location"])


def _patch(base_url: str, upload: str, offset: int, data: bytes) -> httpx.Response:
    return tus_patch(f"{base_url}{upload}", offset, data, headers=AUTH)


def _patch_once_the_lease_expires(base_url: str, upload: str, offset: int, data: bytes) -> int:
    """The killed node's lease on the upload outlives it by up to its TTL: 423 until then."""
    deadline = time.monotonic() + 15
    while (status := _patch(base_url, upload, offset, data).status_code) == 423:
        assert time.monotonic() < deadline, "the dead writer's lease never expired"
        time.sleep(0.25)
    return status


def test_kill_9_during_a_patch_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data = os.urandom(24 * MIB)
    env = clean_environment(STORAGE_SERVICE_KEYS=KEY, STORAGE_UPLOAD_LOCK_TTL_SECONDS="2")
    with serving(cwd=tmp_path, env=env) as server:
        vfolder = _vfolder(server.base_url)
        upload = _create(server.base_url, vfolder, len(data))
        assert _patch(server.base_url, upload, 0, data[: 8 * MIB]).status_code == 204
        host, port = server.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                (
                    f"PATCH {upload} HTTP/1.1\r\nHost: {host}\r\n"
                    f"Authorization: Bearer {KEY}\r\nX-Act-As-User: alice\r\n"
                    "Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
                    f"Upload-Offset: {8 * MIB}\r\nContent-Length: {16 * MIB}\r\n\r\n"
                ).encode()
            )
            sock.sendall(data[8 * MIB : 14 * MIB])  # part of the second PATCH, then...
            time.sleep(0.3)
            server.process.kill()  # ...kill -9, mid-PATCH
            server.process.wait()
    with serving(cwd=tmp_path, env=env) as restarted:
        head = httpx.head(f"{restarted.base_url}{upload}", headers=AUTH)
        assert head.status_code == 200
        offset = int(head.headers["upload-offset"])
        assert offset == 8 * MIB  # exactly what was acknowledged
        resumed = _patch_once_the_lease_expires(restarted.base_url, upload, offset, data[offset:])
        assert resumed == 204
        hex_id = uuid.UUID(vfolder.rsplit("/", 1)[1]).hex
        target = tmp_path / "var" / "volumes" / "local" / hex_id[:2] / hex_id[2:4] / hex_id
        assert (
            hashlib.sha256((target / "big.bin").read_bytes()).digest()
            == hashlib.sha256(data).digest()
        )
        usage = httpx.get(f"{restarted.base_url}{vfolder}/usage", headers=AUTH).json()
        assert (usage["used_bytes"], usage["file_count"]) == (len(data), 1)


def test_an_upload_started_on_one_node_is_resumed_on_another(tmp_path: Path) -> None:
    with postgres_schema() as database:
        env = clean_environment(
            STORAGE_ENV="dev",
            STORAGE_DATABASE_URL=database,
            STORAGE_REDIS_URL=redis_url(),
            STORAGE_REDIS_KEY_PREFIX=f"sp-tus-{secrets.token_hex(4)}:",
            STORAGE_SERVICE_KEYS=KEY,
            STORAGE_DATA_DIR=str(tmp_path / "shared"),
        )
        assert run_cli(["migrate"], cwd=tmp_path, env=env).returncode == 0
        data = os.urandom(6 * MIB)
        with serving(cwd=tmp_path, env=env) as a, serving(cwd=tmp_path, env=env) as b:
            vfolder = _vfolder(a.base_url)
            upload = _create(a.base_url, vfolder, len(data))
            assert _patch(a.base_url, upload, 0, data[: 2 * MIB]).status_code == 204
            head = httpx.head(f"{b.base_url}{upload}", headers=AUTH)
            assert head.headers["upload-offset"] == str(2 * MIB)
            stale = _patch(a.base_url, upload, 0, data[: 2 * MIB])
            assert stale.status_code == 409
            # Two nodes race to append the same bytes: exactly one may write them.
            statuses: list[int] = []
            threads = [
                threading.Thread(
                    target=lambda node=node: statuses.append(
                        _patch(node, upload, 2 * MIB, data[2 * MIB : 4 * MIB]).status_code
                    )
                )
                for node in (a.base_url, b.base_url)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(statuses)[0] == 204 and statuses.count(204) == 1, statuses
            assert set(statuses) <= {204, 409, 423}
            assert _patch(b.base_url, upload, 4 * MIB, data[4 * MIB :]).status_code == 204
            got = httpx.get(f"{a.base_url}{vfolder}/files/big.bin", headers=AUTH)
            assert got.content == data
