"""Each service built from the runtime (and, for those that act in the caller's transaction,
a session): one place that knows what each service needs. ``app.deps`` hands them to routes;
code outside a request (the Backend.AI layer's own transactions, the sweep of received
uploads) builds them here too."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.transfer import TransferMinter
from app.core.runtime import Runtime
from app.db.session import after_commit
from app.files.service import FilesService
from app.pagination import cursor_sealer
from app.permissions.service import GrantService
from app.quotas.service import QuotaService
from app.snapshots.service import SnapshotService
from app.tasks.upkeep import EVERY_VOLUME, PURGE_TRASH
from app.uploads.service import TusService
from app.vfolders.service import VFolderService
from app.vfolders.usage import UsageReader


def vfolder_service(runtime: Runtime, session: AsyncSession) -> VFolderService:
    return VFolderService(
        session=session,
        volumes=runtime.volumes,
        cache=runtime.cache,
        reader=runtime.vfolder_reader,
        gate=runtime.access_gate,
        after_commit=lambda hook: after_commit(session, hook),
        # Purged now rather than at the next period (a task, once per cluster).
        on_trashed=lambda: runtime.scheduler.now(PURGE_TRASH, EVERY_VOLUME),
        cursors=cursor_sealer(runtime.settings),
    )


def usage_reader(runtime: Runtime, session: AsyncSession) -> UsageReader:
    return UsageReader(session=session, gate=runtime.access_gate, volumes=runtime.volumes)


def files_service(runtime: Runtime) -> FilesService:
    return FilesService(
        gate=runtime.access_gate,
        minter=TransferMinter(
            secret=runtime.settings.jwt_secret,
            audience=runtime.authenticator.audience,
            issuer=runtime.authenticator.issuer,
        ),
        quotas=runtime.quota_ledger,
        cursors=cursor_sealer(runtime.settings),
    )


def tus_service(runtime: Runtime) -> TusService:
    return TusService(
        sessions=runtime.sessions,
        gate=runtime.access_gate,
        volumes=runtime.volumes,
        max_size=runtime.settings.tus_max_size_bytes,
        expire_after=timedelta(seconds=runtime.settings.upload_expiry_seconds),
        metrics=runtime.metrics,
        locks=runtime.upload_locks,
        quotas=runtime.quota_ledger,
        collision=runtime.settings.upload_collision,
    )


def snapshot_service(runtime: Runtime) -> SnapshotService:
    return SnapshotService(
        gate=runtime.access_gate,
        ledger=runtime.quota_ledger,
        reconciler=runtime.reconciler,
        cursors=cursor_sealer(runtime.settings),
    )


def quota_service(runtime: Runtime, session: AsyncSession) -> QuotaService:
    return QuotaService(
        session=session,
        reader=runtime.vfolder_reader,
        gate=runtime.access_gate,
        volumes=runtime.volumes,
        ledger=runtime.quota_ledger,
        cache=runtime.cache,
        after_commit=lambda hook: after_commit(session, hook),
    )


def grant_service(runtime: Runtime, session: AsyncSession) -> GrantService:
    return GrantService(
        session=session,
        reader=runtime.vfolder_reader,
        gate=runtime.access_gate,
        schedule_after_commit=lambda hook: after_commit(session, hook),
        changes=runtime.metrics.grant_changes,
    )
