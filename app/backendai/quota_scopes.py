"""Backend.AI's quota scopes on ours: ``user:<uuid>`` / ``project:<uuid>`` on a volume is our
user / group quota scope there, and the per-vfolder quota of older Managers is our vfolder
scope. Every limit goes through ``QuotaService``, so the usage ledger enforces it and a
driver with native quotas gets a vfolder's limit pushed down.

A limit of 0 means "no limit" here, as it does on every Backend.AI backend (XFS ``bhard=0``,
CephFS ``max_bytes=0``) and to the Manager, which reads a falsy ``limit_bytes`` as none."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.backendai.auth import MANAGER_PRINCIPAL
from app.backendai.identity import QuotaScopeId
from app.errors import InvalidRequest
from app.quotas.models import QuotaRow, ScopeType
from app.quotas.repository import QuotaRepository, Scope
from app.quotas.schemas import QuotaLimits
from app.quotas.service import QuotaService
from app.vfolders.schemas import VFolder

MAX_LIMIT_BYTES = 2**62
INITIAL_LIMIT_OPTION = "initial_max_size_for_quota_scope"


def limit_of(value: object, *, field: str) -> int | None:
    """Bytes from the Manager's number (a JSON float: its GraphQL BigInt goes through one);
    None for no limit (absent, null or 0)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{field} must be a number of bytes, not {value!r}", field=field)
    if not math.isfinite(value) or not 0 <= value <= MAX_LIMIT_BYTES:
        raise InvalidRequest(
            f"{field} must be between 0 and {MAX_LIMIT_BYTES} bytes", field=field, value=value
        )
    return int(value) or None


def initial_limit(options: Mapping[str, Any] | None) -> int | None:
    return limit_of((options or {}).get(INITIAL_LIMIT_OPTION), field=INITIAL_LIMIT_OPTION)


class BackendAIQuotaScopes:
    def __init__(self, *, session: AsyncSession, quotas: QuotaService) -> None:
        self._session = session
        self._quotas = quotas
        self._repository = QuotaRepository(session)

    async def ensure(self, volume: str, qsid: QuotaScopeId, *, limit_bytes: int | None) -> None:
        """The scope exists once a folder is created in it (the Manager never creates one
        itself); ``limit_bytes`` is its first limit, applied only while it has none."""
        scope = await self._scope(volume, qsid)
        row = await self._repository.get(scope, for_update=True)
        if row is None:
            try:
                async with self._session.begin_nested():
                    await self._repository.put(
                        QuotaRow(scope_type=scope.type.value, scope_id=scope.id, volume=volume)
                    )
            except IntegrityError:
                pass  # a concurrent create of a folder in this scope made it
            row = await self._repository.get(scope, for_update=True)
        if limit_bytes is not None and row is not None and row.limit_bytes is None:
            await self._set(scope, limit_bytes)

    async def usage(self, volume: str, qsid: QuotaScopeId) -> dict[str, int | None]:
        view = await self._quotas.view(await self._scope(volume, qsid))
        return {"used_bytes": view.used_bytes, "limit_bytes": view.limit_bytes}

    async def set_limit(self, volume: str, qsid: QuotaScopeId, limit_bytes: int | None) -> None:
        await self._set(await self._scope(volume, qsid), limit_bytes)

    async def vfolder_limit(self, vfolder: VFolder) -> int | None:
        view = await self._quotas.view(await self._vfolder_scope(vfolder))
        return view.limit_bytes

    async def set_vfolder_limit(self, vfolder: VFolder, limit_bytes: int | None) -> None:
        await self._set(await self._vfolder_scope(vfolder), limit_bytes)

    async def _scope(self, volume: str, qsid: QuotaScopeId) -> Scope:
        return await self._quotas.scope(MANAGER_PRINCIPAL, qsid.scope_type, qsid.owner_id, volume)

    async def _vfolder_scope(self, vfolder: VFolder) -> Scope:
        return await self._quotas.scope(
            MANAGER_PRINCIPAL, ScopeType.VFOLDER, str(vfolder.id), vfolder.volume
        )

    async def _set(self, scope: Scope, limit_bytes: int | None) -> None:
        """The byte limit only: a file-count limit set through ``/v1`` stays."""
        current = await self._quotas.view(scope)
        limits = QuotaLimits(limit_bytes=limit_bytes, limit_files=current.limit_files)
        await self._quotas.set(MANAGER_PRINCIPAL, scope, limits)
