"""All SQL about uploads."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.uploads.models import UploadRow, UploadStatus


class UploadRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, row: UploadRow) -> None:
        self._session.add(row)
        await self._session.flush()

    async def get(self, upload_id: uuid.UUID) -> UploadRow | None:
        stmt = (
            select(UploadRow)
            .where(UploadRow.id == upload_id)
            .execution_options(populate_existing=True)
        )
        return (await self._session.execute(stmt)).scalar_one_or_none()

    async def advance(self, upload_id: uuid.UUID, *, expected: int, new_offset: int) -> bool:
        """Compare-and-set of the offset: False when another writer moved it meanwhile."""
        result = await self._session.execute(
            update(UploadRow)
            .where(
                UploadRow.id == upload_id,
                UploadRow.offset == expected,
                UploadRow.status == UploadStatus.ACTIVE.value,
            )
            .values(offset=new_offset)
        )
        return bool(getattr(result, "rowcount", 0))

    async def active_for(self, vfolder_id: uuid.UUID, owner: str) -> Sequence[UploadRow]:
        stmt = (
            select(UploadRow)
            .where(
                UploadRow.vfolder_id == vfolder_id,
                UploadRow.owner == owner,
                UploadRow.status == UploadStatus.ACTIVE.value,
            )
            .order_by(UploadRow.created_at)
        )
        return (await self._session.execute(stmt)).scalars().all()

    async def finished_but_active(self, *, limit: int = 500) -> Sequence[UploadRow]:
        stmt = (
            select(UploadRow)
            .where(
                UploadRow.status == UploadStatus.ACTIVE.value,
                UploadRow.length.is_not(None),
                UploadRow.offset == UploadRow.length,
            )
            .limit(limit)
        )
        return (await self._session.execute(stmt)).scalars().all()

    async def expired(self, now: datetime, *, limit: int = 500) -> Sequence[UploadRow]:
        stmt = (
            select(UploadRow)
            .where(UploadRow.status == UploadStatus.ACTIVE.value, UploadRow.expires_at < now)
            .limit(limit)
        )
        return (await self._session.execute(stmt)).scalars().all()
