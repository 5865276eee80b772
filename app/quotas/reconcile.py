"""Reconciliation: the usage ledger against what is really on disk.

Writes through the API keep the ledger exact; writes through a mount (a container writing into
its vfolder) do not pass through here, and neither would a bug. A scan walks a vfolder with no
lock held, so writes go on meanwhile; it then takes the vfolder's row lock and applies the
difference only if the ledger did not move during the scan (every API write changes the disk
and the ledger under that lock, so an unmoved ledger means the scan saw a settled state). A
vfolder that kept changing is retried, then reported as busy for the next pass.

Writes under way are never counted twice: their bytes are in the volume's staging area,
outside every vfolder, and stay in their reservations until they settle — which moves the
ledger, so a scan that overlapped one is retried. Scheduled scans (every
``STORAGE_USAGE_SCAN_INTERVAL_SECONDS``, one task per volume and period for the whole
cluster) are incremental (``drivers.usage_scan``); one asked for a single vfolder walks it
all. The walk runs in a worker thread, never on the event loop. This module holds no SQL:
it is in the vfolder and quota repositories."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import VFolderDeleted, VFolderNotFound, VolumeNotFound
from app.observability.logging import get_logger
from app.observability.metrics import Metrics
from app.quotas.ledger import QuotaLedger
from app.quotas.repository import QuotaRepository, Scope, scopes_of
from app.quotas.schemas import LedgerCorrection, ReconcileReport
from app.tasks.runner import TaskContext, TaskHandler
from app.vfolders.models import VFolderStatus
from app.vfolders.repository import VFolderRepository
from app.volumes.registry import VolumeRegistry
from drivers.errors import DriverError
from drivers.types import Usage

log = get_logger(__name__)

SCAN_ATTEMPTS = 3


class Busy(Exception):
    """The vfolder changed during every scan attempt (or is being cloned)."""


class LedgerMoved(Exception):
    """An API write changed the vfolder's ledger while it was scanned."""


class Reconciler:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        volumes: VolumeRegistry,
        ledger: QuotaLedger,
        metrics: Metrics,
    ) -> None:
        self._sessions = sessions
        self._volumes = volumes
        self._ledger = ledger
        self._metrics = metrics

    async def vfolder(self, vfolder_id: uuid.UUID) -> ReconcileReport:
        """Asked for (``POST /v1/vfolders/{id}/reconcile``): a full walk, so a file that grew
        in place is found too."""
        # Abandoned reservations first, at once: an operator reconciling after a crash wants
        # the space back now, not at the next scheduled sweep.
        await self.sweep_reservations()
        async with self._sessions() as session:
            row = await VFolderRepository(session).get(vfolder_id)
            volume = row.volume if row is not None else ""
        report = _empty_report(volume)
        await self._reconcile_into(report, vfolder_id, full=True)
        return report

    async def volume(
        self, volume: str, progress: Callable[[int, int], Awaitable[None]] | None = None
    ) -> ReconcileReport:
        """Every vfolder of the volume; ``progress(done, total)`` after each."""
        if volume not in self._volumes.names():
            raise VolumeNotFound(f"volume {volume!r} is not configured")
        await self.sweep_reservations()
        report = _empty_report(volume)
        async with self._sessions() as session:
            statuses = await VFolderRepository(session).statuses_on_volume(volume)
        known = set(statuses)
        live = sorted(i for i, status in statuses.items() if status is not VFolderStatus.DELETED)
        on_disk = set(await self._volumes.get(volume).vfolder_ids())
        report.orphan_directories = sorted(on_disk - known)
        for done, vfolder_id in enumerate(live, start=1):
            if vfolder_id not in on_disk:
                report.missing_directories.append(vfolder_id)
            else:
                await self._reconcile_into(report, vfolder_id, full=False)
            if progress is not None:
                await progress(done, len(live))
        if report.orphan_directories or report.missing_directories:
            log.warning(
                "orphans found on volume %s",
                volume,
                extra={
                    "event": "quota_orphans",
                    "orphan_directories": [str(i) for i in report.orphan_directories],
                    "missing_directories": [str(i) for i in report.missing_directories],
                },
            )
        return report

    async def _reconcile_into(
        self, report: ReconcileReport, vfolder_id: uuid.UUID, *, full: bool
    ) -> None:
        try:
            correction = await self._reconcile_one(vfolder_id, full=full)
        except Busy:
            report.skipped_busy.append(vfolder_id)
            return
        except DriverError as exc:
            log.warning("cannot scan vfolder %s: %s", vfolder_id, exc)
            report.missing_directories.append(vfolder_id)
            return
        report.vfolders_scanned += 1
        if correction is not None:
            report.corrections.append(correction)
            report.drift_bytes += abs(correction.bytes_after - correction.bytes_before)

    async def _reconcile_one(self, vfolder_id: uuid.UUID, *, full: bool) -> LedgerCorrection | None:
        for _ in range(SCAN_ATTEMPTS):
            async with self._sessions() as session:
                row = await VFolderRepository(session).get(vfolder_id)
            if row is None:
                return None
            if row.status == VFolderStatus.DELETED.value:
                self._volumes.get(row.volume).files.forget_usage(vfolder_id)
                return None
            if row.status == VFolderStatus.CLONING.value:
                # Its content arrives under the clone's reservation and is settled when the
                # copy is whole: counting it now would count it twice.
                raise Busy(str(vfolder_id))
            before = Usage(row.used_bytes, row.file_count)
            scanned, started = await self._scan(row.volume, vfolder_id, full=full)
            try:
                return await self._apply(row.volume, vfolder_id, before, scanned, started)
            except LedgerMoved:
                continue  # an API write landed during the scan: scan again
            except (VFolderDeleted, VFolderNotFound):
                self._volumes.get(row.volume).files.forget_usage(vfolder_id)
                return None  # deleted during the scan: nothing left to correct
        raise Busy(str(vfolder_id))

    async def _apply(
        self,
        volume: str,
        vfolder_id: uuid.UUID,
        before: Usage,
        scanned: Usage,
        started: datetime,
    ) -> LedgerCorrection | None:
        """The scan's difference, under the vfolder's row lock, unless the ledger moved
        since ``before`` was read (``LedgerMoved``)."""
        async with self._ledger.change(vfolder_id) as change:
            locked = change.vfolder
            if Usage(locked.used_bytes, locked.file_count) != before:
                raise LedgerMoved(str(vfolder_id))
            await _mark_scanned(change.session, scopes_of(locked), vfolder_id, started)
            if scanned == before:
                return None
            await change.correct(scanned - before)
            await self._ledger.track_alerts(change.session, scopes_of(locked))
        drift = scanned.bytes - before.bytes
        self._metrics.quota_drift_bytes.labels(volume=volume).inc(abs(drift))
        log.warning(
            "usage ledger corrected",
            extra={
                "event": "quota_drift",
                "vfolder_id": str(vfolder_id),
                "volume": volume,
                "drift_bytes": drift,
                "drift_files": scanned.entries - before.entries,
            },
        )
        return LedgerCorrection(
            vfolder_id=vfolder_id,
            bytes_before=before.bytes,
            bytes_after=scanned.bytes,
            files_before=before.entries,
            files_after=scanned.entries,
        )

    async def _scan(
        self, volume: str, vfolder_id: uuid.UUID, *, full: bool
    ) -> tuple[Usage, datetime]:
        """The vfolder's usage on disk, and when the walk started (every change made before
        then is in it)."""
        started = datetime.now(UTC)
        result = await self._volumes.get(volume).files.scan_usage(vfolder_id, full=full)
        log.debug(
            "vfolder scanned",
            extra={
                "vfolder_id": str(vfolder_id),
                "directories": result.directories,
                "directories_reused": result.reused,
            },
        )
        return result.usage, started

    async def sweep_reservations(self) -> int:
        """Releases reservations whose writer died without settling or releasing them (its
        node is known dead, or the reservation expired)."""
        return await self._ledger.release_abandoned()


RECONCILE_VOLUME = "reconcile-volume"


def reconcile_volume_handler(reconciler: Reconciler) -> TaskHandler:
    async def reconcile(task: TaskContext) -> BaseModel:
        async def progress(done: int, total: int) -> None:
            await task.report(done, total, "vfolders")

        return await reconciler.volume(task.target, progress)

    return reconcile


async def _mark_scanned(
    session: AsyncSession, scopes: list[Scope], vfolder_id: uuid.UUID, started: datetime
) -> None:
    await VFolderRepository(session).mark_scanned(vfolder_id, started)
    await QuotaRepository(session).mark_reconciled(scopes, datetime.now(UTC))


def _empty_report(volume: str) -> ReconcileReport:
    return ReconcileReport(
        volume=volume,
        vfolders_scanned=0,
        corrections=[],
        drift_bytes=0,
        orphan_directories=[],
        missing_directories=[],
        skipped_busy=[],
    )
