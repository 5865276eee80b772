"""A vfolder's usage, and how true it is: the backend's own figure where it has one
(``FastUsageCapable``), else the usage ledger with the time a scan last checked it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.errors import VFolderNotFound
from app.observability.context import bind_log_fields
from app.observability.logging import get_logger
from app.permissions.access import AccessGate
from app.permissions.policy import VFolderOperation
from app.vfolders.models import VFolderRow, VFolderStatus
from app.vfolders.repository import VFolderRepository
from app.vfolders.schemas import UsageSource, VFolderUsage
from app.volumes.registry import VolumeRegistry
from drivers.errors import DriverError

log = get_logger(__name__)


class UsageReader:
    def __init__(self, *, session: AsyncSession, gate: AccessGate, volumes: VolumeRegistry) -> None:
        self._session = session
        self._gate = gate
        self._volumes = volumes

    async def usage(self, principal: Principal, vfolder_id: uuid.UUID) -> VFolderUsage:
        """Never cached: the ledger changes with every write, the native figure with every
        write through a mount."""
        bind_log_fields(vfolder_id=vfolder_id, operation="usage")
        await self._gate.authorize(
            self._session, principal, vfolder_id, VFolderOperation.READ, live=False
        )
        repo = VFolderRepository(self._session)
        row = await repo.get(vfolder_id)
        if row is None:
            raise VFolderNotFound(f"vfolder {vfolder_id} not found", vfolder_id=str(vfolder_id))
        await repo.refresh(row)
        native = await self._native(row)
        if native is not None:
            used_bytes, as_of = native
            return _usage(row, used_bytes, UsageSource.NATIVE, as_of)
        if row.usage_scanned_at is not None:
            return _usage(row, row.used_bytes, UsageSource.SCAN, row.usage_scanned_at)
        return _usage(row, row.used_bytes, UsageSource.LEDGER, datetime.now(UTC))

    async def _native(self, row: VFolderRow) -> tuple[int, datetime] | None:
        """The backend's figure and when it was asked; None without one (no such
        capability, a vfolder not ready, or the backend failing: the ledger answers then)."""
        native = self._volumes.get(row.volume).usage
        if row.status != VFolderStatus.READY.value or native is None:
            return None
        asked = datetime.now(UTC)
        try:
            return await native.usage_bytes(row.id), asked
        except DriverError as exc:
            log.warning(
                "the backend's usage figure is unavailable; answering from the ledger",
                extra={"vfolder_id": str(row.id), "volume": row.volume, "error": str(exc)},
            )
            return None


def _usage(row: VFolderRow, used_bytes: int, source: UsageSource, as_of: datetime) -> VFolderUsage:
    return VFolderUsage(
        vfolder_id=row.id,
        used_bytes=used_bytes,
        file_count=row.file_count,
        source=source,
        as_of=as_of,
        scanned_at=row.usage_scanned_at,
    )
