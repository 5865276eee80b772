"""A node dies after recording an upload's last bytes (offset = length, fsynced) but before
placing the file. tus-js-client and Uppy take HEAD's offset = length as done and never send
the empty PATCH that would place it, so the server must place it by itself: at the dead node's
restart, on a HEAD to any node, or on that empty PATCH. Otherwise bytes it reported received
are lost when the upload expires.

The window between the two steps is too short to hit with kill -9 every time, so the node is
killed before its last PATCH and the test then does that PATCH's recording itself, as
``RecordedProgress.record`` does: fsync the bytes into the staging file, then advance the
offset through ``UploadRepository`` under a fresh fencing token. Real processes, real database,
real files."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.db.engine import create_engine, create_session_factory
from app.uploads.repository import UploadRepository
from drivers.layout import VolumeLayout
from tests.support.server import Server, clean_environment, run_cli, serving
from tests.support.services import postgres_schema, redis_url

pytestmark = pytest.mark.slow

KEY = "tus-unplaced-service-key-0123456789abcdef012345"
AUTH = {"Authorization": f"Bearer {KEY}", "X-Act-As-User": "alice", "Tus-Resumable": "1.0.0"}
MIB = 1024 * 1024
NAME = "report.bin"  # "cmVwb3J0LmJpbg==" below


def _vfolder(base_url: str) -> uuid.UUID:
    created = httpx.post(
        f"{base_url}/v1/vfolders",
        json={"name": f"unplaced-{secrets.token_hex(3)}", "volume": "local", "owner_id": "alice"},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert created.status_code == 201, created.text
    return uuid.UUID(created.json()["id"])


def _create(base_url: str, vfolder: uuid.UUID, length: int) -> str:
    created = httpx.post(
        f"{base_url}/v1/vfolders/{vfolder}/uploads",
        headers={**AUTH, "Upload-Length": str(length), "Upload-Metadata": "path cmVwb3J0LmJpbg=="},
    )
    assert created.status_code == 201, created.text
    return str(created.headers["location"])


def _patch(base_url: str, upload: str, offset: int, data: bytes) -> httpx.Response:
    return httpx.patch(
        f"{base_url}{upload}",
        headers={
            **AUTH,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
        content=data,
        timeout=60,
    )


def _upload_with_all_but_its_tail(server: Server, data: bytes, tail: int) -> tuple[uuid.UUID, str]:
    """An upload whose every byte but the last ``tail`` was acknowledged; then kill -9."""
    vfolder = _vfolder(server.base_url)
    upload = _create(server.base_url, vfolder, len(data))
    assert _patch(server.base_url, upload, 0, data[:-tail]).status_code == 204
    server.process.kill()
    server.process.wait()
    return vfolder, upload


def _record_the_last_bytes(
    database_url: str, volume: Path, upload: str, tail: bytes, *, lease_left: float = 0
) -> None:
    """What the dead node's last PATCH did before it died: its bytes fsynced into the staging
    file and the offset advanced to the length, under a new fencing token; its lease on the
    upload outlives it by ``lease_left`` seconds."""
    upload_id = uuid.UUID(upload.rsplit("/", 1)[1])

    async def record() -> None:
        engine = create_engine(database_url)
        try:
            sessions = create_session_factory(engine)
            async with sessions() as session, session.begin():
                row = await UploadRepository(session).get(upload_id)
                assert row is not None and row.length is not None
                staging = VolumeLayout(volume).staging / row.staging_name
                offset = row.offset
                fence = await UploadRepository(session).next_fence(upload_id)
                assert fence is not None
            assert staging.stat().st_size == offset
            with staging.open("ab") as file:
                file.write(tail)
                file.flush()
                os.fsync(file.fileno())
            async with sessions() as session, session.begin():
                advanced = await UploadRepository(session).advance(
                    upload_id, expected=offset, new_offset=offset + len(tail), fence=fence
                )
            assert advanced
            if lease_left:
                now = datetime.now(UTC)
                async with sessions() as session, session.begin():
                    assert await UploadRepository(session).take_lease(
                        upload_id,
                        token="dead-node",
                        now=now,
                        until=now + timedelta(seconds=lease_left),
                    )
            assert offset + len(tail) == row.length
        finally:
            await engine.dispose()

    asyncio.run(record())


def _placed(volume: Path, vfolder: uuid.UUID) -> Path:
    return VolumeLayout(volume).vfolder_path(vfolder) / NAME


def _assert_finished(
    base_url: str, volume: Path, vfolder: uuid.UUID, upload: str, data: bytes
) -> None:
    assert _placed(volume, vfolder).read_bytes() == data
    head = httpx.head(f"{base_url}{upload}", headers=AUTH)
    assert head.status_code == 200
    assert head.headers["upload-offset"] == head.headers["upload-length"] == str(len(data))
    got = httpx.get(f"{base_url}/v1/vfolders/{vfolder}/files/{NAME}", headers=AUTH)
    assert got.status_code == 200 and got.content == data
    usage = httpx.get(f"{base_url}/v1/vfolders/{vfolder}/usage", headers=AUTH).json()
    assert (usage["used_bytes"], usage["file_count"]) == (len(data), 1)
    # The client that never saw the last acknowledgement confirms the end: a no-op.
    assert _patch(base_url, upload, len(data), b"").status_code == 204
    usage = httpx.get(f"{base_url}/v1/vfolders/{vfolder}/usage", headers=AUTH).json()
    assert (usage["used_bytes"], usage["file_count"]) == (len(data), 1)


def test_the_restarted_node_places_what_it_recorded_before_dying(tmp_path: Path) -> None:
    data = os.urandom(3 * MIB + 17)
    env = clean_environment(STORAGE_SERVICE_KEYS=KEY, STORAGE_UPLOAD_LOCK_TTL_SECONDS="2")
    volume = tmp_path / "var" / "volumes" / "local"
    with serving(cwd=tmp_path, env=env) as server:
        vfolder, upload = _upload_with_all_but_its_tail(server, data, MIB)
    database = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'storage-proxy.sqlite3'}"
    _record_the_last_bytes(database, volume, upload, data[-MIB:])
    assert not _placed(volume, vfolder).exists()
    with serving(cwd=tmp_path, env=env) as restarted:
        # Placed before serving, with no request about it.
        assert _placed(volume, vfolder).read_bytes() == data
        _assert_finished(restarted.base_url, volume, vfolder, upload, data)
        assert "placing an upload whose writer died after its last bytes" in restarted.output()


def test_a_head_on_another_node_places_what_the_dead_node_recorded(tmp_path: Path) -> None:
    with postgres_schema() as database:
        env = clean_environment(
            STORAGE_ENV="dev",
            STORAGE_DATABASE_URL=database,
            STORAGE_REDIS_URL=redis_url(),
            STORAGE_REDIS_KEY_PREFIX=f"sp-unplaced-{secrets.token_hex(4)}:",
            STORAGE_SERVICE_KEYS=KEY,
            STORAGE_DATA_DIR=str(tmp_path / "shared"),
            STORAGE_UPLOAD_LOCK_TTL_SECONDS="2",
        )
        assert run_cli(["migrate"], cwd=tmp_path, env=env).returncode == 0
        volume = tmp_path / "shared" / "volumes" / "local"
        data = os.urandom(2 * MIB + 5)
        with serving(cwd=tmp_path, env=env) as survivor:
            with serving(cwd=tmp_path, env=env) as doomed:
                vfolder, upload = _upload_with_all_but_its_tail(doomed, data, 5)
            _record_the_last_bytes(database, volume, upload, data[-5:])
            assert not _placed(volume, vfolder).exists()
            # The client only asks where it stands; the survivor places the file first.
            head = httpx.head(f"{survivor.base_url}{upload}", headers=AUTH)
            assert head.status_code == 200
            assert head.headers["upload-offset"] == str(len(data))
            _assert_finished(survivor.base_url, volume, vfolder, upload, data)


def test_an_empty_patch_at_the_end_places_what_the_dead_node_recorded(tmp_path: Path) -> None:
    data = os.urandom(MIB + 3)
    env = clean_environment(STORAGE_SERVICE_KEYS=KEY, STORAGE_UPLOAD_LOCK_TTL_SECONDS="2")
    volume = tmp_path / "var" / "volumes" / "local"
    database = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'storage-proxy.sqlite3'}"
    with serving(cwd=tmp_path, env=env) as server:
        vfolder = _vfolder(server.base_url)
        upload = _create(server.base_url, vfolder, len(data))
        assert _patch(server.base_url, upload, 0, data[:MIB]).status_code == 204
        # Another node (sharing the database) recorded the rest and died before placing it.
        _record_the_last_bytes(database, volume, upload, data[MIB:])
        assert _patch(server.base_url, upload, len(data), b"").status_code == 204
        _assert_finished(server.base_url, volume, vfolder, upload, data)


def test_the_sweep_places_it_when_the_dead_nodes_lease_outlived_the_head(tmp_path: Path) -> None:
    """The HEAD came while the dead writer's lease still held the upload, so it could not place
    the file, yet told the client offset = length: the client never asks again. The periodic
    sweep of any live node places it once the lease has run out."""
    data = os.urandom(MIB + 9)
    env = clean_environment(
        STORAGE_SERVICE_KEYS=KEY,
        STORAGE_UPLOAD_LOCK_TTL_SECONDS="2",
        STORAGE_UPLOAD_EXPIRY_SECONDS="20",  # a sweep every 2 s
        STORAGE_TASK_POLL_SECONDS="0.5",
    )
    volume = tmp_path / "var" / "volumes" / "local"
    database = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'storage-proxy.sqlite3'}"
    with serving(cwd=tmp_path, env=env) as server:
        vfolder = _vfolder(server.base_url)
        upload = _create(server.base_url, vfolder, len(data))
        assert _patch(server.base_url, upload, 0, data[:MIB]).status_code == 204
        _record_the_last_bytes(database, volume, upload, data[MIB:], lease_left=3)
        head = httpx.head(f"{server.base_url}{upload}", headers=AUTH)
        assert head.status_code == 200
        assert head.headers["upload-offset"] == str(len(data))
        deadline = time.monotonic() + 20
        while not _placed(volume, vfolder).exists():
            assert time.monotonic() < deadline, "the fully received upload was never placed"
            time.sleep(0.25)
        _assert_finished(server.base_url, volume, vfolder, upload, data)


def test_the_restarted_node_places_it_under_the_rename_policy(tmp_path: Path) -> None:
    """Someone took the name before the node died: the deployment's policy still holds."""
    data = os.urandom(MIB + 1)
    theirs = b"someone else's report"
    env = clean_environment(
        STORAGE_SERVICE_KEYS=KEY,
        STORAGE_UPLOAD_LOCK_TTL_SECONDS="2",
        STORAGE_UPLOAD_COLLISION="rename",
    )
    volume = tmp_path / "var" / "volumes" / "local"
    with serving(cwd=tmp_path, env=env) as server:
        vfolder = _vfolder(server.base_url)
        upload = _create(server.base_url, vfolder, len(data))
        assert _patch(server.base_url, upload, 0, data[:-7]).status_code == 204
        taken = httpx.put(
            f"{server.base_url}/v1/vfolders/{vfolder}/files/{NAME}", headers=AUTH, content=theirs
        )
        assert taken.status_code == 201, taken.text
        server.process.kill()
        server.process.wait()
    database = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'storage-proxy.sqlite3'}"
    _record_the_last_bytes(database, volume, upload, data[-7:])
    with serving(cwd=tmp_path, env=env) as restarted:
        base = restarted.base_url
        assert _placed(volume, vfolder).read_bytes() == theirs
        renamed = VolumeLayout(volume).vfolder_path(vfolder) / "report (1).bin"
        assert renamed.read_bytes() == data
        head = httpx.head(f"{base}{upload}", headers=AUTH)
        assert head.status_code == 200
        assert head.headers["upload-destination"] == "report%20%281%29.bin"
        usage = httpx.get(f"{base}/v1/vfolders/{vfolder}/usage", headers=AUTH).json()
        assert (usage["used_bytes"], usage["file_count"]) == (len(data) + len(theirs), 2)
