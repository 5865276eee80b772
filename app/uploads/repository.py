"""All SQL about uploads."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.uploads.models import UploadRow, UploadStatus

# A checkpoint of every long PATCH runs this: built once, on the table rather than the mapped
# class (the ORM's bulk-update path costs a third more CPU than the statement itself).
_UPLOADS = cast(Table, UploadRow.__table__)
_ADVANCE = (
    update(_UPLOADS)
    .where(
        _UPLOADS.c.id == bindparam("upload_id"),
        _UPLOADS.c.offset == bindparam("expected"),
        _UPLOADS.c.lock_fence == bindparam("fence"),
        _UPLOADS.c.status == UploadStatus.ACTIVE.value,
    )
    .values(offset=bindparam("new_offset"))
)


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

    async def advance(
        self, upload_id: uuid.UUID, *, expected: int, new_offset: int, fence: int
    ) -> bool:
        """Compare-and-set of the offset, only for the latest lock holder: False when another
        writer moved it meanwhile or took the lock over."""
        result = await self._session.execute(
            _ADVANCE,
            {
                "upload_id": upload_id,
                "expected": expected,
                "fence": fence,
                "new_offset": new_offset,
            },
        )
        return bool(getattr(result, "rowcount", 0))

    async def next_fence(self, upload_id: uuid.UUID) -> int | None:
        """A new fencing token, larger than every earlier one; None when no such upload."""
        result = await self._session.execute(
            update(UploadRow)
            .where(UploadRow.id == upload_id)
            .values(lock_fence=UploadRow.lock_fence + 1)
            .returning(UploadRow.lock_fence)
        )
        return result.scalar_one_or_none()

    async def take_lease(
        self, upload_id: uuid.UUID, *, token: str, now: datetime, until: datetime
    ) -> bool:
        """The lease when it is free or expired."""
        result = await self._session.execute(
            update(UploadRow)
            .where(
                UploadRow.id == upload_id,
                or_(UploadRow.lock_expires_at.is_(None), UploadRow.lock_expires_at < now),
            )
            .values(lock_token=token, lock_expires_at=until)
        )
        return bool(getattr(result, "rowcount", 0))

    async def renew_lease(self, upload_id: uuid.UUID, *, token: str, until: datetime) -> bool:
        result = await self._session.execute(
            update(UploadRow)
            .where(UploadRow.id == upload_id, UploadRow.lock_token == token)
            .values(lock_expires_at=until)
        )
        return bool(getattr(result, "rowcount", 0))

    async def release_lease(self, upload_id: uuid.UUID, *, token: str) -> None:
        await self._session.execute(
            update(UploadRow)
            .where(UploadRow.id == upload_id, UploadRow.lock_token == token)
            .values(lock_token=None, lock_expires_at=None)
        )

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

    async def still_staged(self, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Those of ``ids`` whose upload still needs its staging file: any not terminated
        (an active one, or a completed part waiting for its final upload)."""
        rows = await self._session.execute(
            select(UploadRow.id).where(
                UploadRow.id.in_(ids), UploadRow.status != UploadStatus.TERMINATED.value
            )
        )
        return set(rows.scalars())

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
            .where(
                or_(
                    UploadRow.status == UploadStatus.ACTIVE.value,
                    and_(
                        UploadRow.status == UploadStatus.COMPLETED.value,
                        UploadRow.concat == "partial",
                    ),
                ),
                UploadRow.expires_at < now,
            )
            .limit(limit)
        )
        return (await self._session.execute(stmt)).scalars().all()
