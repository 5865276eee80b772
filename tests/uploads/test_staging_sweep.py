"""The staging sweep removes what dead writers left (an unlocked PUT file, the file of an upload
since terminated) and nothing a live writer needs: not the file of a PUT still streaming, nor
that of an unfinished tus upload, however old they look."""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import AsyncIterator

import anyio

from app.config import Settings
from app.db.engine import create_engine, create_session_factory
from app.uploads.staging_sweep import StagingSweeper
from app.volumes.registry import VolumeRegistry
from tests.files.conftest import ALICE, VFolderHandle
from tests.support.polling import wait_until

TUS = {**ALICE, "Tus-Resumable": "1.0.0"}
AN_HOUR_AGO = time.time() - 3600


def _age(path: os.PathLike[str]) -> None:
    os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))


async def _tus_upload(vf: VFolderHandle, name: str) -> uuid.UUID:
    created = await vf.client.post(
        vf.url("uploads"),
        headers={
            **TUS,
            "Upload-Length": "10",
            "Upload-Metadata": f"path {base64.b64encode(name.encode()).decode()}",
        },
    )
    assert created.status_code == 201, created.text
    return uuid.UUID(created.headers["location"].rsplit("/", 1)[1])


async def test_the_sweep_removes_only_what_no_live_writer_needs(
    vfolder: VFolderHandle, settings: Settings
) -> None:
    staging = vfolder.root.parents[2] / ".staging"
    more = anyio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"a" * 1000
        await more.wait()
        yield b"b" * 1000

    statuses: list[int] = []

    async def put() -> None:
        response = await vfolder.client.put(
            vfolder.url("files/slow.bin"), content=slow_body(), headers=ALICE
        )
        statuses.append(response.status_code)

    live_upload = await _tus_upload(vfolder, "live.bin")
    gone_upload = await _tus_upload(vfolder, "gone.bin")
    assert (
        await vfolder.client.delete(vfolder.url(f"uploads/{gone_upload}"), headers=TUS)
    ).status_code == 204
    # What a process killed mid-way leaves: a PUT's file nobody holds, a terminated upload's.
    (staging / f"put-{'0' * 24}").write_bytes(b"dead put")
    (staging / f"tus-{gone_upload.hex}").write_bytes(b"dead patch")

    engine = create_engine(settings.effective_database_url)
    volumes = VolumeRegistry.from_config(settings.volumes())
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(put)
            # Until the PUT has its staging file (beside the dead PUT's).
            await wait_until(lambda: len(list(staging.glob("put-*"))) == 2)
            for path in staging.iterdir():
                _age(path)  # everything looks abandoned by its age alone
            sweeper = StagingSweeper(
                sessions=create_session_factory(engine), volumes=volumes, grace_seconds=60
            )

            removed = await sweeper.run_once()

            left = sorted(p.name for p in staging.iterdir())
            more.set()
        # The app's own periodic pass (once a minute) may have swept the dead two first.
        assert removed <= 2, left
        assert f"tus-{live_upload.hex}" in left
        assert f"tus-{gone_upload.hex}" not in left and f"put-{'0' * 24}" not in left
        assert len([name for name in left if name.startswith("put-")]) == 1  # the live PUT's
        assert statuses == [201]
        assert (vfolder.root / "slow.bin").read_bytes() == b"a" * 1000 + b"b" * 1000
    finally:
        await engine.dispose()
