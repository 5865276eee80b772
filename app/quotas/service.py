"""The quota API's rules: who may see and set which limit, and what a scope's state is."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.cache import Cache
from app.errors import Forbidden, InvalidRequest, QuotaExceeded, VolumeNotFound
from app.observability.logging import get_logger
from app.permissions.access import AccessGate
from app.permissions.policy import VFolderOperation
from app.quotas.ledger import QuotaLedger
from app.quotas.models import QuotaRow, ScopeType
from app.quotas.reconcile import RECONCILE_VOLUME
from app.quotas.repository import QuotaRepository, Scope, ScopeUsage
from app.quotas.schemas import EnforcedBy, QuotaLimits, QuotaView
from app.tasks.models import TaskRow
from app.tasks.service import owner_of, submit
from app.vfolders.reader import VFolderReader
from app.vfolders.repository import VFolderRepository
from app.volumes.registry import VolumeRegistry

log = get_logger(__name__)


class QuotaService:
    def __init__(
        self,
        *,
        session: AsyncSession,
        reader: VFolderReader,
        gate: AccessGate,
        volumes: VolumeRegistry,
        ledger: QuotaLedger,
        cache: Cache,
        after_commit: Callable[[Callable[[], Awaitable[None]]], None],
    ) -> None:
        self._cache = cache
        self._after_commit = after_commit
        self._session = session
        self._reader = reader
        self._gate = gate
        self._volumes = volumes
        self._ledger = ledger
        self._quotas = QuotaRepository(session)

    async def scope(
        self, principal: Principal, scope_type: ScopeType, scope_id: str, volume: str | None
    ) -> Scope:
        """The scope named by the request, once the caller may at least see it."""
        if scope_type is ScopeType.VFOLDER:
            vfolder_id = _vfolder_id(scope_id)
            vfolder, _ = await self._gate.authorize(
                self._session, principal, vfolder_id, VFolderOperation.READ
            )
            if volume is not None and volume != vfolder.volume:
                raise InvalidRequest(f"vfolder {vfolder_id} lives on volume {vfolder.volume}")
            return Scope(scope_type, str(vfolder_id), vfolder.volume)
        if volume is None:
            raise InvalidRequest(f"a {scope_type.value} quota is per volume: give ?volume=")
        if volume not in self._volumes.names():
            raise VolumeNotFound(f"volume {volume!r} is not configured")
        own = (
            principal.user_id == scope_id
            if scope_type is ScopeType.USER
            else scope_id in principal.groups
        )
        if not (own or principal.is_admin):
            raise Forbidden(f"only admins see the quota of another {scope_type.value}")
        return Scope(scope_type, scope_id, volume)

    async def view(self, scope: Scope) -> QuotaView:
        limit, usage = await self._quotas.get(scope), await self._quotas.usage(scope)
        return _quota_view(scope, limit, usage, self._enforcer(scope))

    async def set(self, principal: Principal, scope: Scope, limits: QuotaLimits) -> QuotaView:
        await self._may_set(principal, scope, limits)
        row = await self._quotas.get(scope, for_update=True)
        if row is None:
            row = QuotaRow(scope_type=scope.type.value, scope_id=scope.id, volume=scope.volume)
        row.limit_bytes = limits.limit_bytes
        row.limit_files = limits.limit_files
        await self._quotas.put(row)
        await self._mirror(scope, limits.limit_bytes)
        await self._ledger.track_alerts(self._session, [scope])
        log.info(
            "quota set",
            extra={"audit": True, "scope": scope.label, "limit_bytes": limits.limit_bytes},
        )
        return await self.view(scope)

    async def unset(self, principal: Principal, scope: Scope) -> None:
        await self._may_set(principal, scope, QuotaLimits())
        await self._quotas.remove(scope)
        await self._mirror(scope, None)
        log.info("quota unset", extra={"audit": True, "scope": scope.label})

    async def over(self, principal: Principal, *, threshold_percent: float) -> list[QuotaView]:
        if not principal.is_admin:
            raise Forbidden("only admins list every quota")
        views = []
        for row, usage in await self._quotas.every_limit_with_usage():
            scope = Scope(ScopeType(row.scope_type), row.scope_id, row.volume)
            view = _quota_view(scope, row, usage, self._enforcer(scope))
            if view.usage_percent is not None and view.usage_percent >= threshold_percent:
                views.append(view)
        return views

    async def scan_volume(self, principal: Principal, volume: str) -> TaskRow:
        """The task reconciling every vfolder of ``volume`` (admins): a new one, or the one
        already running."""
        if not principal.is_admin:
            raise Forbidden("only admins reconcile a whole volume")
        if volume not in self._volumes.names():
            raise VolumeNotFound(f"volume {volume!r} is not configured")
        return await submit(
            self._session, kind=RECONCILE_VOLUME, target=volume, owner=owner_of(principal)
        )

    def _enforcer(self, scope: Scope) -> EnforcedBy:
        """A vfolder's byte limit is mirrored to a backend with native quotas (``_mirror``),
        which then refuses writes through mounts too; user and group limits, and every
        limit on other backends, are the proxy's alone."""
        if (
            scope.type is ScopeType.VFOLDER
            and scope.volume in self._volumes.names()
            and self._volumes.get(scope.volume).quota is not None
        ):
            return EnforcedBy.BACKEND
        return EnforcedBy.PROXY

    async def _may_set(self, principal: Principal, scope: Scope, limits: QuotaLimits) -> None:
        """Admins and service keys set any limit; a vfolder's owner sets its vfolder's,
        within the owner's own user quota."""
        if principal.is_admin:
            return
        if scope.type is not ScopeType.VFOLDER:
            raise Forbidden(f"only admins set {scope.type.value} quotas")
        vfolder, _ = await self._gate.authorize(
            self._session, principal, uuid.UUID(scope.id), VFolderOperation.SET_QUOTA
        )
        if vfolder.owner_type != ScopeType.USER.value:
            return
        own = await self._quotas.get(Scope(ScopeType.USER, vfolder.owner_id, scope.volume))
        for name, wanted, ceiling in (
            ("bytes", limits.limit_bytes, own.limit_bytes if own else None),
            ("files", limits.limit_files, own.limit_files if own else None),
        ):
            if ceiling is not None and wanted is not None and wanted > ceiling:
                raise QuotaExceeded(
                    f"a vfolder limit of {wanted} {name} is above your own user quota of "
                    f"{ceiling} {name} on volume {scope.volume}",
                    scope_type=ScopeType.USER.value,
                    scope_id=vfolder.owner_id,
                    volume=scope.volume,
                    **{f"limit_{name}": ceiling, f"requested_{name}": wanted},
                )

    async def _mirror(self, scope: Scope, limit_bytes: int | None) -> None:
        """The vfolder row shows its byte limit, and a backend with native quotas enforces
        it too (the proxy's own reservations stay the source of truth)."""
        if scope.type is not ScopeType.VFOLDER:
            return
        vfolder_id = uuid.UUID(scope.id)
        vfolder = await VFolderRepository(self._session).get(vfolder_id)
        if vfolder is None:
            return
        vfolder.quota_bytes = limit_bytes
        await self._session.flush()
        await self._reader.invalidate(vfolder_id, self._after_commit)
        driver = self._volumes.get(scope.volume)
        if driver.quota is not None:
            await driver.quota.set_quota(vfolder_id, limit_bytes=limit_bytes)


def _vfolder_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidRequest(f"{text!r} is not a vfolder id") from None


def _quota_view(
    scope: Scope, limit: QuotaRow | None, usage: ScopeUsage, enforced_by: EnforcedBy
) -> QuotaView:
    limit_bytes = limit.limit_bytes if limit else None
    return QuotaView(
        scope_type=scope.type,
        scope_id=scope.id,
        volume=scope.volume,
        limit_bytes=limit_bytes,
        limit_files=limit.limit_files if limit else None,
        used_bytes=usage.used_bytes,
        used_files=usage.used_files,
        reserved_bytes=usage.reserved_bytes,
        reserved_files=usage.reserved_files,
        free_bytes=(
            max(0, limit_bytes - usage.used_bytes - usage.reserved_bytes)
            if limit_bytes is not None
            else None
        ),
        usage_percent=(round(100 * usage.used_bytes / limit_bytes, 3) if limit_bytes else None),
        alert_level_percent=limit.alert_level if limit else 0,
        last_reconciled_at=limit.last_reconciled_at if limit else None,
        enforced_by=enforced_by,
    )
