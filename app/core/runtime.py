"""Everything the lifespan builds once per process, read by the dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth.tokens import Authenticator
from app.cache import Cache
from app.config import Settings
from app.observability.metrics import Metrics
from app.permissions.access import AccessGate
from app.quotas.ledger import QuotaLedger
from app.quotas.reconcile import Reconciler
from app.tasks.runner import TaskRunner
from app.tasks.schedule import Scheduler
from app.uploads.locks import UploadLocks
from app.vfolders.reader import VFolderReader
from app.volumes.registry import VolumeRegistry


@dataclass(slots=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    cache: Cache
    volumes: VolumeRegistry
    metrics: Metrics
    authenticator: Authenticator
    vfolder_reader: VFolderReader
    access_gate: AccessGate
    upload_locks: UploadLocks
    quota_ledger: QuotaLedger
    reconciler: Reconciler
    tasks: TaskRunner
    scheduler: Scheduler
