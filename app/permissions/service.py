"""Sharing: grant, change and revoke modes on a vfolder. Every change is audited and announced
to every node before its commit (``VFolderReader.guard_access_change``): a change that cannot
be announced is refused, so no node goes on granting what was revoked."""

from __future__ import annotations

import uuid

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.db.session import ScheduleAfterCommit
from app.errors import GrantNotFound, VFolderDeleted
from app.observability.context import bind_log_fields
from app.observability.logging import get_logger
from app.permissions.access import AccessGate
from app.permissions.models import GranteeType, Mode
from app.permissions.policy import VFolderOperation
from app.permissions.repository import GrantRepository
from app.permissions.schemas import GrantInfo, GrantList
from app.vfolders.models import VFolderStatus
from app.vfolders.reader import VFolderReader

log = get_logger("storage_proxy.audit")


class GrantService:
    def __init__(
        self,
        *,
        session: AsyncSession,
        reader: VFolderReader,
        gate: AccessGate,
        schedule_after_commit: ScheduleAfterCommit,
        changes: Counter,
    ) -> None:
        self._changes = changes
        self._session = session
        self._grants = GrantRepository(session)
        self._reader = reader
        self._gate = gate
        self._schedule = schedule_after_commit

    async def _authorize_share(self, principal: Principal, vfolder_id: uuid.UUID) -> None:
        bind_log_fields(vfolder_id=vfolder_id, operation="share")
        row, _access = await self._gate.authorize_locked(
            self._session, principal, vfolder_id, VFolderOperation.SHARE
        )
        if row.status == VFolderStatus.DELETED.value:
            raise VFolderDeleted(f"vfolder {vfolder_id} is deleted", vfolder_id=str(vfolder_id))

    async def list_grants(self, principal: Principal, vfolder_id: uuid.UUID) -> GrantList:
        await self._authorize_share(principal, vfolder_id)
        rows = await self._grants.for_vfolder(vfolder_id)
        return GrantList(items=[GrantInfo.model_validate(row) for row in rows])

    async def set_grant(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        *,
        grantee_type: GranteeType,
        grantee_id: str,
        mode: Mode,
    ) -> tuple[GrantInfo, bool]:
        await self._authorize_share(principal, vfolder_id)
        row, created = await self._grants.upsert(
            vfolder_id,
            grantee_type=grantee_type,
            grantee_id=grantee_id,
            mode=mode,
            granted_by=f"{principal.kind.value}:{principal.id}",
        )
        await self._reader.guard_access_change(vfolder_id, self._schedule)
        self._changes.labels(action="set").inc()
        log.info(
            "grant set",
            extra={
                "audit": True,
                "principal": f"{principal.kind.value}:{principal.id}",
                "grantee": f"{grantee_type.value}:{grantee_id}",
                "mode": mode.value,
                "created": created,
            },
        )
        return GrantInfo.model_validate(row), created

    async def revoke_grant(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        *,
        grantee_type: GranteeType,
        grantee_id: str,
    ) -> None:
        await self._authorize_share(principal, vfolder_id)
        if not await self._grants.remove(
            vfolder_id, grantee_type=grantee_type, grantee_id=grantee_id
        ):
            raise GrantNotFound(f"no grant for {grantee_type.value} {grantee_id!r}")
        await self._reader.guard_access_change(vfolder_id, self._schedule)
        self._changes.labels(action="revoke").inc()
        log.info(
            "grant revoked",
            extra={
                "audit": True,
                "principal": f"{principal.kind.value}:{principal.id}",
                "grantee": f"{grantee_type.value}:{grantee_id}",
            },
        )
