"""The background purge: survives restarts, never destroys what a live row still owns."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db.engine import create_engine, create_session_factory
from app.observability.metrics import Metrics
from app.vfolders.models import VFolderRow
from app.vfolders.purge import RESTORE_GRACE_SECONDS, TrashPurger
from app.volumes.registry import VolumeRegistry
from tests.support.app import SERVICE, client_for
from tests.support.polling import wait_until


def _purger(
    engine: AsyncEngine, volumes: VolumeRegistry, clock: Callable[[], float] = time.time
) -> TrashPurger:
    return TrashPurger(
        volumes=volumes,
        sessions=create_session_factory(engine),
        metrics=Metrics(),
        clock=clock,
    )


async def _create(settings: Settings, name: str) -> uuid.UUID:
    async with client_for(settings) as client:
        response = await client.post(
            "/v1/vfolders",
            json={"name": name, "volume": "local", "owner_id": "alice"},
            headers=SERVICE,
        )
        assert response.status_code == 201
        return uuid.UUID(response.json()["id"])


def _trash(settings: Settings) -> Path:
    return settings.data_dir / "volumes" / "local" / ".trash"


async def _set_status(settings: Settings, vfolder_id: uuid.UUID, status: str) -> None:
    engine = create_engine(settings.effective_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(VFolderRow).where(VFolderRow.id == vfolder_id).values(status=status)
            )
    finally:
        await engine.dispose()


async def test_trash_left_by_a_crash_is_purged_on_next_start(settings: Settings) -> None:
    vfolder_id = await _create(settings, "crashed")
    volumes = VolumeRegistry.from_config(settings.volumes())
    driver = volumes.get("local")
    (driver.vfolder_path(vfolder_id) / "f").write_bytes(b"data")
    # The process died after committing the deletion, before purging.
    await driver.move_to_trash(vfolder_id)
    await _set_status(settings, vfolder_id, "deleted")
    assert any(_trash(settings).iterdir())

    slow_purge = settings.model_copy(update={"trash_purge_interval_seconds": 3600})
    async with client_for(slow_purge):
        await wait_until(lambda: not any(_trash(settings).iterdir()))


async def test_trashed_directory_of_a_live_row_is_restored_after_grace(
    settings: Settings,
) -> None:
    vfolder_id = await _create(settings, "uncommitted-delete")
    volumes = VolumeRegistry.from_config(settings.volumes())
    driver = volumes.get("local")
    (driver.vfolder_path(vfolder_id) / "f").write_bytes(b"keep")
    # The delete moved the directory, then its transaction failed to commit: row still live.
    await driver.move_to_trash(vfolder_id)

    now = [1000.0]
    engine = create_engine(settings.effective_database_url)
    try:
        purger = _purger(engine, volumes, clock=lambda: now[0])
        assert await purger.run_once() == 0
        assert not driver.vfolder_path(vfolder_id).exists()  # a delete may still be in flight
        now[0] += RESTORE_GRACE_SECONDS + 1
        assert await purger.run_once() == 0
        assert (driver.vfolder_path(vfolder_id) / "f").read_bytes() == b"keep"
        assert list(_trash(settings).iterdir()) == []
    finally:
        await engine.dispose()


async def test_trash_entry_without_metadata_is_kept(settings: Settings) -> None:
    await _create(settings, "unrelated")  # builds the volume
    volumes = VolumeRegistry.from_config(settings.volumes())
    orphan = _trash(settings) / f"{uuid.uuid4().hex}.0000"
    orphan.mkdir()
    engine = create_engine(settings.effective_database_url)
    try:
        purger = _purger(engine, volumes)
        assert await purger.run_once() == 0
        assert orphan.is_dir()
    finally:
        await engine.dispose()


async def test_directories_deleted_from_a_live_vfolder_are_purged_after_grace(
    settings: Settings,
) -> None:
    vfolder_id = await _create(settings, "live")
    volumes = VolumeRegistry.from_config(settings.volumes())
    driver = volumes.get("local")
    # What a crash in the middle of a recursive file delete leaves behind.
    leftover = _trash(settings) / driver.layout.new_file_trash_name(vfolder_id)  # type: ignore[attr-defined]
    (leftover / "sub").mkdir(parents=True)
    now = [1000.0]
    engine = create_engine(settings.effective_database_url)
    try:
        purger = _purger(engine, volumes, clock=lambda: now[0])
        assert await purger.run_once() == 0  # perhaps a request is still removing it
        assert leftover.is_dir()
        now[0] += RESTORE_GRACE_SECONDS + 1
        assert await purger.run_once() == 1
        assert not leftover.exists()
        assert driver.vfolder_path(vfolder_id).is_dir()  # the vfolder itself is untouched
    finally:
        await engine.dispose()
