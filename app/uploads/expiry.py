"""Background removal of unfinished uploads (and of parts never joined by a final upload) past
their `Upload-Expires`: the record is marked terminated, its quota reservation released and the
staging file removed, so their space comes back."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.observability.logging import get_logger
from app.quotas.ledger import upload_holder
from app.quotas.repository import QuotaRepository
from app.uploads.models import UploadStatus
from app.uploads.repository import UploadRepository
from app.vfolders.repository import VFolderRepository
from app.volumes.registry import VolumeRegistry
from drivers.errors import DriverError
from drivers.paths import parse_relative_path

log = get_logger(__name__)


class UploadReaper:
    """Run by the ``release-abandoned`` task (``app.tasks.upkeep``); its repair runs once
    before the node serves."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        volumes: VolumeRegistry,
        place: Callable[[uuid.UUID], Awaitable[bool]] | None = None,
    ) -> None:
        """``place`` (``TusService.finish_received``) places an upload whose bytes were all
        recorded by a writer that died before placing the file."""
        self._sessions = sessions
        self._volumes = volumes
        self._place = place

    async def repair_interrupted_completions(self) -> int:
        """An upload whose bytes were all acknowledged, whose staging file is gone and whose
        destination exists was renamed into place by a process that died before its
        transaction committed: count its usage now and mark it completed (exactly once: the
        row is updated under its vfolder's lock, only while still active). One whose staging
        file is still there died before placing it: it is placed now, as its last PATCH would
        have placed it."""
        repaired = 0
        unplaced: list[uuid.UUID] = []
        async with self._sessions() as session:
            candidates = [
                (row.id, row.vfolder_id, row.staging_name, row.destination)
                for row in await UploadRepository(session).finished_but_active()
            ]
        for upload_id, vfolder_id, staging_name, destination in candidates:
            async with self._sessions() as session, session.begin():
                vfolders = VFolderRepository(session)
                vfolder = await vfolders.get_for_update(vfolder_id)
                row = await UploadRepository(session).get(upload_id)
                if vfolder is None or row is None or row.status != UploadStatus.ACTIVE.value:
                    continue
                files = self._volumes.get(vfolder.volume).files
                if await files.staged_exists(vfolder_id, staging_name):
                    unplaced.append(upload_id)  # placed below, outside the vfolder's lock
                    continue
                try:
                    entry = await files.stat(vfolder_id, parse_relative_path(destination))
                except DriverError:
                    continue
                await vfolders.add_usage(vfolder_id, bytes_delta=entry.size, count_delta=1)
                await QuotaRepository(session).drop_reservation(upload_holder(upload_id))
                row.status = UploadStatus.COMPLETED.value
                repaired += 1
                log.warning(
                    "repaired an upload completed by a crashed process",
                    extra={"upload_id": str(upload_id)},
                )
        return repaired + await self._place_all(unplaced)

    async def place_received(self) -> int:
        """Places the uploads whose bytes were all recorded but whose writer died before
        placing them (on another node, which may never come back). Each is placed under its
        upload's lease, so one with a live writer is left to it."""
        async with self._sessions() as session:
            upload_ids = [row.id for row in await UploadRepository(session).finished_but_active()]
        return await self._place_all(upload_ids)

    async def _place_all(self, upload_ids: list[uuid.UUID]) -> int:
        place = self._place
        if place is None:
            return 0
        placed = 0
        for upload_id in upload_ids:
            try:
                placed += await place(upload_id)
            except Exception:
                log.exception(
                    "could not place a fully received upload", extra={"upload_id": str(upload_id)}
                )
        return placed

    async def run_once(self, now: datetime | None = None) -> int:
        """Expire what is due; returns how many uploads were removed. Fully received ones
        are placed first: an upload acknowledged in full is never left to expire."""
        await self.place_received()
        async with self._sessions() as session:
            due = await UploadRepository(session).expired(now or datetime.now(UTC))
            targets = []
            for row in due:
                vfolder = await VFolderRepository(session).get(row.vfolder_id)
                targets.append(
                    (row.id, row.vfolder_id, row.staging_name, vfolder.volume if vfolder else None)
                )
        removed = 0
        for upload_id, vfolder_id, staging_name, volume in targets:
            async with self._sessions() as session, session.begin():
                current = await UploadRepository(session).get(upload_id)
                if current is None or not current.expirable:
                    continue
                current.status = UploadStatus.TERMINATED.value
                await QuotaRepository(session).drop_reservation(upload_holder(upload_id))
            if volume is not None:
                try:
                    await self._volumes.get(volume).files.remove_staged(vfolder_id, staging_name)
                except DriverError as exc:
                    log.warning("cannot remove staging file %s: %s", staging_name, exc)
            removed += 1
            log.info("upload expired", extra={"upload_id": str(upload_id)})
        return removed
