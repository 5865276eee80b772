"""All SQL about grants."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.permissions.models import GranteeType, GrantRow, Mode
from app.permissions.policy import Grant

# Built once: every cold access check reads a vfolder's grants.
_FOR_VFOLDER = (
    select(GrantRow)
    .where(GrantRow.vfolder_id == bindparam("vfolder_id"))
    .order_by(GrantRow.grantee_type, GrantRow.grantee_id)
)


class GrantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def for_vfolder(self, vfolder_id: uuid.UUID) -> Sequence[GrantRow]:
        found = await self._session.execute(_FOR_VFOLDER, {"vfolder_id": vfolder_id})
        return found.scalars().all()

    async def for_vfolders(
        self, vfolder_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[Grant, ...]]:
        if not vfolder_ids:
            return {}
        stmt = select(GrantRow).where(GrantRow.vfolder_id.in_(vfolder_ids))
        found: dict[uuid.UUID, list[Grant]] = {}
        for row in (await self._session.execute(stmt)).scalars():
            found.setdefault(row.vfolder_id, []).append(
                Grant(GranteeType(row.grantee_type), row.grantee_id, Mode(row.mode))
            )
        return {key: tuple(value) for key, value in found.items()}

    async def upsert(
        self,
        vfolder_id: uuid.UUID,
        *,
        grantee_type: GranteeType,
        grantee_id: str,
        mode: Mode,
        granted_by: str,
    ) -> tuple[GrantRow, bool]:
        """The grant and whether it is new."""
        key = (vfolder_id, grantee_type.value, grantee_id)
        row = await self._session.get(GrantRow, key, with_for_update=True)
        if row is not None:
            row.mode = mode.value
            row.granted_by = granted_by
            await self._session.flush()
            return row, False
        row = GrantRow(
            vfolder_id=vfolder_id,
            grantee_type=grantee_type.value,
            grantee_id=grantee_id,
            mode=mode.value,
            granted_by=granted_by,
        )
        self._session.add(row)
        await self._session.flush()
        return row, True

    async def remove(
        self, vfolder_id: uuid.UUID, *, grantee_type: GranteeType, grantee_id: str
    ) -> bool:
        result = await self._session.execute(
            delete(GrantRow).where(
                GrantRow.vfolder_id == vfolder_id,
                GrantRow.grantee_type == grantee_type.value,
                GrantRow.grantee_id == grantee_id,
            )
        )
        return bool(getattr(result, "rowcount", 0))
