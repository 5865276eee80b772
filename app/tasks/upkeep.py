"""The service's own upkeep, run as scheduled tasks (once per cluster per period, taken over
if a node dies): purging the trash, expiring unfinished uploads, releasing abandoned quota
reservations and removing abandoned staging files, reconciling every volume's ledger with its
disk. Plus the task kinds users start: clones, volume scans."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.quotas.ledger import QuotaLedger
from app.quotas.reconcile import RECONCILE_VOLUME, Reconciler, reconcile_volume_handler
from app.tasks.runner import TaskContext, TaskHandler, TaskRunner
from app.tasks.schedule import Schedule, Scheduler
from app.uploads.expiry import UploadReaper
from app.uploads.staging_sweep import StagingSweeper
from app.vfolders.clone import CLONE_VFOLDER, clone_handler
from app.vfolders.purge import TrashPurger
from app.volumes.registry import VolumeRegistry

PURGE_TRASH = "purge-trash"
RELEASE_ABANDONED = "release-abandoned"
EVERY_VOLUME = "*"


class PurgeResult(BaseModel):
    purged_directories: int


class ReleaseResult(BaseModel):
    expired_uploads: int
    released_reservations: int
    removed_staging_files: int = 0


def _purge(purger: TrashPurger) -> TaskHandler:
    async def purge(_task: TaskContext) -> BaseModel:
        return PurgeResult(purged_directories=await purger.run_once())

    return purge


def _release(reaper: UploadReaper, reconciler: Reconciler, sweeper: StagingSweeper) -> TaskHandler:
    async def release(_task: TaskContext) -> BaseModel:
        expired = await reaper.run_once()
        return ReleaseResult(
            expired_uploads=expired,
            released_reservations=await reconciler.sweep_reservations(),
            removed_staging_files=await sweeper.run_once(),
        )

    return release


def build_task_runner(
    settings: Settings,
    *,
    sessions: async_sessionmaker[AsyncSession],
    volumes: VolumeRegistry,
    ledger: QuotaLedger,
    reconciler: Reconciler,
    purger: TrashPurger,
    reaper: UploadReaper,
    sweeper: StagingSweeper,
    node: str | None = None,
) -> TaskRunner:
    return TaskRunner(
        sessions,
        {
            PURGE_TRASH: _purge(purger),
            RELEASE_ABANDONED: _release(reaper, reconciler, sweeper),
            RECONCILE_VOLUME: reconcile_volume_handler(reconciler),
            CLONE_VFOLDER: clone_handler(sessions, volumes, ledger),
        },
        node=node,
        lease_seconds=settings.task_lease_seconds,
        poll_seconds=settings.task_poll_seconds,
    )


def build_scheduler(
    settings: Settings,
    *,
    sessions: async_sessionmaker[AsyncSession],
    volumes: VolumeRegistry,
    runner: TaskRunner,
) -> Scheduler:
    schedules = [
        Schedule(PURGE_TRASH, EVERY_VOLUME, settings.trash_purge_interval_seconds),
        Schedule(RELEASE_ABANDONED, EVERY_VOLUME, min(60.0, settings.upload_expiry_seconds / 10)),
        *(
            Schedule(
                RECONCILE_VOLUME,
                volume,
                settings.quota_reconcile_interval_seconds,
                skip_first=True,
            )
            for volume in volumes.names()
        ),
    ]
    return Scheduler(schedules, sessions=sessions, on_queued=runner.wake)
