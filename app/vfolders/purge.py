"""Background purge of deleted vfolders' directories from each volume's trash.

The trash lives on disk, so the work survives restarts: whatever a crash left behind is found
on the next pass, which runs at startup. Each entry is checked against the metadata store:
- row ``deleted``: purge the directory for good;
- row live: the delete that trashed it never committed; after a grace period (longer than any
  request) the directory is put back;
- no row: not ours to judge (an orphan, e.g. a database restored from backup): reported, kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.observability.logging import get_logger
from app.observability.metrics import Metrics
from app.vfolders.models import VFolderStatus
from app.vfolders.repository import VFolderRepository
from app.volumes.registry import VolumeRegistry
from drivers.base import TrashEntry, VolumeDriver
from drivers.errors import DriverError

log = get_logger(__name__)

# Longer than any request: an entry older than this belongs to no request in flight.
RESTORE_GRACE_SECONDS = 600.0


async def purge_deleted(
    driver: VolumeDriver, volume: str, entry: TrashEntry, metrics: Metrics
) -> None:
    """Removes the trashed directory of a vfolder whose deletion has committed."""
    await driver.purge(entry)
    metrics.trash_purged.labels(volume=volume).inc()
    log.info(
        "purged deleted vfolder",
        extra={"vfolder_id": str(entry.vfolder_id), "volume": volume, "trash_entry": entry.name},
    )


class TrashPurger:
    """Run by the ``purge-trash`` task (``app.tasks.upkeep``), once per cluster per period."""

    def __init__(
        self,
        *,
        volumes: VolumeRegistry,
        sessions: async_sessionmaker[AsyncSession],
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._volumes = volumes
        self._sessions = sessions
        self._metrics = metrics
        self._clock = clock
        self._first_entry_seen: dict[str, float] = {}

    async def run_once(self) -> int:
        """One pass over every volume; returns how many directories were purged."""
        purged = 0
        for volume, driver in self._volumes.items():
            try:
                entries = await driver.list_trash()
            except DriverError as exc:
                log.warning("cannot list trash of volume %s: %s", volume, exc)
                continue
            for entry in entries:
                purged += await self._handle(volume, driver, entry)
        return purged

    async def _handle(self, volume: str, driver: VolumeDriver, entry: TrashEntry) -> int:
        if entry.holds_files:
            # A directory deleted from inside a live vfolder. The request that trashed it
            # measures and removes it itself; only one a crash left behind, seen for longer
            # than any request lasts, is ours to remove.
            if not self._seen_for_long(entry):
                return 0
            await driver.purge(entry)
            self._first_entry_seen.pop(entry.name, None)
            return 1
        async with self._sessions() as session:
            row = await VFolderRepository(session).get(entry.vfolder_id)
            status = None if row is None else row.status
        extra = {"vfolder_id": str(entry.vfolder_id), "volume": volume, "trash_entry": entry.name}
        try:
            if status == VFolderStatus.DELETED.value:
                await purge_deleted(driver, volume, entry, self._metrics)
                return 1
            if status is None:
                log.warning("trash entry without a metadata row left in place", extra=extra)
                return 0
            await self._maybe_restore(driver, entry, extra)
        except DriverError as exc:
            log.warning("trash entry not handled: %s", exc, extra=extra)
        return 0

    def _seen_for_long(self, entry: TrashEntry) -> bool:
        first_seen = self._first_entry_seen.setdefault(entry.name, self._clock())
        return self._clock() - first_seen >= RESTORE_GRACE_SECONDS

    async def _maybe_restore(
        self, driver: VolumeDriver, entry: TrashEntry, extra: dict[str, str]
    ) -> None:
        # The entry may belong to a delete still in flight; only an old one is an aborted one.
        if not self._seen_for_long(entry):
            return
        await driver.restore_from_trash(entry)
        self._first_entry_seen.pop(entry.name, None)
        log.warning("restored a trashed vfolder whose deletion never committed", extra=extra)
