"""Reconciliation: the usage ledger against what is really on disk.

Writes through the API keep the ledger exact; writes through a mount (a container writing into
its vfolder) do not pass through here, and neither would a bug. A scan walks a vfolder with no
lock held, so writes go on meanwhile; it then takes the vfolder's row lock and applies the
difference only if the ledger did not move during the scan (every API write changes the disk
and the ledger under that lock, so an unmoved ledger means the scan saw a settled state). A
vfolder that kept changing is retried, then reported as busy for the next pass."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import VolumeNotFound
from app.observability.logging import get_logger
from app.observability.metrics import Metrics
from app.quotas.ledger import QuotaLedger
from app.quotas.models import QuotaRow
from app.quotas.repository import scopes_of
from app.quotas.schemas import LedgerCorrection, ReconcileReport
from app.tasks.runner import TaskContext, TaskHandler
from app.vfolders.models import VFolderRow, VFolderStatus
from app.vfolders.repository import VFolderRepository
from app.volumes.registry import VolumeRegistry
from drivers.errors import DriverError
from drivers.types import Usage

log = get_logger(__name__)

SCAN_ATTEMPTS = 3


class Busy(Exception):
    """The vfolder changed during every scan attempt."""


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
        # Abandoned reservations first, at once: an operator reconciling after a crash wants
        # the space back now, not at the next scheduled sweep.
        await self.sweep_reservations()
        async with self._sessions() as session:
            row = await VFolderRepository(session).get(vfolder_id)
            volume = row.volume if row is not None else ""
        report = _empty_report(volume)
        await self._reconcile_into(report, vfolder_id)
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
            rows = (
                await session.execute(
                    select(VFolderRow.id, VFolderRow.status).where(VFolderRow.volume == volume)
                )
            ).all()
        known = {row.id for row in rows}
        live = sorted(row.id for row in rows if row.status != VFolderStatus.DELETED.value)
        on_disk = set(await self._volumes.get(volume).vfolder_ids())
        report.orphan_directories = sorted(on_disk - known)
        for done, vfolder_id in enumerate(live, start=1):
            if vfolder_id not in on_disk:
                report.missing_directories.append(vfolder_id)
            else:
                await self._reconcile_into(report, vfolder_id)
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

    async def _reconcile_into(self, report: ReconcileReport, vfolder_id: uuid.UUID) -> None:
        try:
            correction = await self._reconcile_one(vfolder_id)
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

    async def _reconcile_one(self, vfolder_id: uuid.UUID) -> LedgerCorrection | None:
        for _ in range(SCAN_ATTEMPTS):
            async with self._sessions() as session:
                row = await VFolderRepository(session).get(vfolder_id)
            if row is None or row.status == VFolderStatus.DELETED.value:
                return None
            before = (row.used_bytes, row.file_count)
            scanned = await self._volumes.get(row.volume).files.usage(vfolder_id)
            async with self._ledger.change(vfolder_id) as change:
                locked = change.vfolder
                if (locked.used_bytes, locked.file_count) != before:
                    continue  # an API write landed during the scan: scan again
                await _mark_reconciled(change.session, locked)
                if (scanned.bytes, scanned.entries) == before:
                    return None
                await change.correct(scanned - Usage(*before))
                await self._ledger.track_alerts(change.session, scopes_of(locked))
            drift = scanned.bytes - before[0]
            self._metrics.quota_drift_bytes.labels(volume=row.volume).inc(abs(drift))
            log.warning(
                "usage ledger corrected",
                extra={
                    "event": "quota_drift",
                    "vfolder_id": str(vfolder_id),
                    "volume": row.volume,
                    "drift_bytes": drift,
                    "drift_files": scanned.entries - before[1],
                },
            )
            return LedgerCorrection(
                vfolder_id=vfolder_id,
                bytes_before=before[0],
                bytes_after=scanned.bytes,
                files_before=before[1],
                files_after=scanned.entries,
            )
        raise Busy(str(vfolder_id))

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


async def _mark_reconciled(session: AsyncSession, vfolder: VFolderRow) -> None:
    now = datetime.now(UTC)
    for scope in scopes_of(vfolder):
        await session.execute(
            update(QuotaRow)
            .where(
                QuotaRow.scope_type == scope.type.value,
                QuotaRow.scope_id == scope.id,
                QuotaRow.volume == scope.volume,
            )
            .values(last_reconciled_at=now)
        )


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
