"""Removal of the staging files that writers left behind when they died (kill -9 mid-PUT,
mid-form upload, mid-PATCH of an upload since terminated): at start and on a schedule.

A file goes only when all of these hold: it was not written for the grace period; no
process holds its lock (a PUT or form writer locks its file until it is committed or
discarded, a tus PATCH while it writes; a dead process holds nothing); and, for a tus file,
its upload is not live (a live upload's file waits for its client, whatever its age, until
the upload expires). Every removal is logged with the file's path."""

from __future__ import annotations

import time
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.observability.logging import get_logger
from app.uploads.models import TUS_STAGING_PREFIX, upload_id_of_staging
from app.uploads.repository import UploadRepository
from app.volumes.registry import VolumeRegistry
from drivers.errors import DriverError

log = get_logger(__name__)

LOOKUP_BATCH = 500


class StagingSweeper:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        volumes: VolumeRegistry,
        grace_seconds: float,
    ) -> None:
        self._sessions = sessions
        self._volumes = volumes
        self._grace = grace_seconds

    async def run_once(self) -> int:
        """One sweep of every volume; returns how many files were removed."""
        removed = 0
        for volume in self._volumes.names():
            try:
                removed += await self._sweep(volume)
            except (DriverError, OSError) as exc:
                log.warning("cannot sweep the staging area of volume %s: %s", volume, exc)
        return removed

    async def _sweep(self, volume: str) -> int:
        files = self._volumes.get(volume).files
        older_than = time.time() - self._grace
        candidates = await files.staging_candidates(older_than=older_than)
        # A key may carry its vfolder before the file name (staging inside each vfolder).
        uploads = {key: upload_id_of_staging(_name_of(key)) for key in candidates}
        live = await self._live_uploads([i for i in uploads.values() if i is not None])
        removed = 0
        for name, upload_id in uploads.items():
            if _name_of(name).startswith(TUS_STAGING_PREFIX) and (
                upload_id is None or upload_id in live
            ):
                continue  # a live upload's file, or one not named by this service
            if not await files.remove_abandoned_staged(name, older_than=older_than):
                continue
            removed += 1
            log.warning(
                "removed an abandoned staging file: %s",
                name,
                extra={"volume": volume, "staging_file": name},
            )
        return removed

    async def _live_uploads(self, ids: list[uuid.UUID]) -> set[uuid.UUID]:
        live: set[uuid.UUID] = set()
        async with self._sessions() as session:
            for start in range(0, len(ids), LOOKUP_BATCH):
                live |= await UploadRepository(session).still_staged(
                    ids[start : start + LOOKUP_BATCH]
                )
        return live


def _name_of(key: str) -> str:
    """The staging file's name in a sweep key (``<vfolder hex>/<name>`` or ``<name>``)."""
    return key.rpartition("/")[2]
