"""Background removal of unfinished uploads past their `Upload-Expires`: the record is marked
terminated and the staging file removed, so their space comes back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.uploads.models import UploadStatus
from app.uploads.repository import UploadRepository
from app.vfolders.repository import VFolderRepository
from app.volumes.registry import VolumeRegistry
from drivers.errors import DriverError

log = logging.getLogger(__name__)


class UploadReaper:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        volumes: VolumeRegistry,
        interval_seconds: float,
    ) -> None:
        self._sessions = sessions
        self._volumes = volumes
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="upload-reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("upload expiry pass failed")
            await asyncio.sleep(self._interval)

    async def run_once(self, *, now: datetime | None = None) -> int:
        """Expire what is due; returns how many uploads were removed."""
        async with self._sessions() as session:
            due = await UploadRepository(session).expired(now or datetime.now(UTC))
            targets = []
            for row in due:
                vfolder = await VFolderRepository(session).get(row.vfolder_id)
                targets.append((row.id, row.staging_name, vfolder.volume if vfolder else None))
        removed = 0
        for upload_id, staging_name, volume in targets:
            async with self._sessions() as session, session.begin():
                current = await UploadRepository(session).get(upload_id)
                if current is None or current.status != UploadStatus.ACTIVE.value:
                    continue
                current.status = UploadStatus.TERMINATED.value
            if volume is not None:
                try:
                    await self._volumes.get(volume).files.remove_staged(staging_name)
                except DriverError as exc:
                    log.warning("cannot remove staging file %s: %s", staging_name, exc)
            removed += 1
            log.info("upload expired", extra={"upload_id": str(upload_id)})
        return removed
