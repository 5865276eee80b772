"""All SQL about vfolders."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    false,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.permissions.models import GranteeType, GrantRow, Mode
from app.permissions.policy import VisibilityScope
from app.vfolders.models import OwnerType, VFolderRow, VFolderStatus

VFolderSelect = Select[VFolderRow]


class DuplicateVFolder(Exception):
    """An insert or rename hit a unique constraint (id, or live name per owner)."""


@dataclass(frozen=True, slots=True)
class VFolderFilter:
    visibility: VisibilityScope | None = None
    volume: str | None = None
    owner_type: OwnerType | None = None
    owner_id: str | None = None
    name: str | None = None
    status: VFolderStatus | None = VFolderStatus.READY
    mode: Mode | None = None  # at least this mode for the visibility scope's caller


# Statements on every write's (and create's) path, built once: building one cost more CPU than
# running it.
# populate_existing: a row cached in the session must not hide a concurrent change.
_GET_FOR_UPDATE = (
    select(VFolderRow)
    .where(VFolderRow.id == bindparam("vfolder_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)
_LIVE_NAME = and_(
    VFolderRow.owner_type == bindparam("owner_type"),
    VFolderRow.owner_id == bindparam("owner_id"),
    VFolderRow.name == bindparam("name"),
    VFolderRow.status != VFolderStatus.DELETED.value,
)
_LIVE_BY_NAME = select(VFolderRow).where(_LIVE_NAME)
# A create's two questions in one statement: is this id taken, is this live name taken.
_BY_ID_OR_LIVE_NAME = select(VFolderRow).where(
    or_(VFolderRow.id == bindparam("vfolder_id"), _LIVE_NAME)
)
# In SQL (``x = x + d``), so concurrent writers never lose one. On the table, not the mapped
# class: the ORM's bulk-update path (which would also evaluate the WHERE clause against every
# object in the session) cost a third more CPU than the statement; the rows the session
# loaded are not read after this.
_VFOLDERS = cast(Table, VFolderRow.__table__)
_ADD_USAGE = (
    update(_VFOLDERS)
    .where(_VFOLDERS.c.id == bindparam("vfolder_id"))
    .values(
        used_bytes=_VFOLDERS.c.used_bytes + bindparam("bytes_delta"),
        file_count=_VFOLDERS.c.file_count + bindparam("count_delta"),
    )
)


@dataclass(frozen=True, slots=True)
class LockedVFolder:
    """What a change under the vfolder's row lock reads of it: where it lives, who owns it,
    its status and its ledger. Read as plain columns: loading the mapped row was a fifth of a
    mkdir's CPU, and a change writes through statements, not through the row."""

    id: uuid.UUID
    owner_type: str
    owner_id: str
    volume: str
    status: str
    used_bytes: int
    file_count: int


_MARK_DELETED = (
    update(_VFOLDERS)
    .where(_VFOLDERS.c.id == bindparam("vfolder_id"))
    .values(
        status=VFolderStatus.DELETED.value,
        deleted_at=bindparam("at", type_=_VFOLDERS.c.deleted_at.type),
        updated_at=bindparam("at", type_=_VFOLDERS.c.updated_at.type),
    )
)
_LOCK_FOR_CHANGE = (
    select(
        _VFOLDERS.c.id,
        _VFOLDERS.c.owner_type,
        _VFOLDERS.c.owner_id,
        _VFOLDERS.c.volume,
        _VFOLDERS.c.status,
        _VFOLDERS.c.used_bytes,
        _VFOLDERS.c.file_count,
    )
    .where(_VFOLDERS.c.id == bindparam("vfolder_id"))
    .with_for_update()
)


class VFolderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, vfolder_id: uuid.UUID) -> VFolderRow | None:
        return await self._session.get(VFolderRow, vfolder_id)

    async def refresh(self, row: VFolderRow) -> None:
        await self._session.refresh(row)

    async def get_for_update(self, vfolder_id: uuid.UUID) -> VFolderRow | None:
        found = await self._session.execute(_GET_FOR_UPDATE, {"vfolder_id": vfolder_id})
        return found.scalar_one_or_none()

    async def lock_for_change(self, vfolder_id: uuid.UUID) -> LockedVFolder | None:
        """The vfolder's row locked until the transaction ends, as ``LockedVFolder``."""
        found = (await self._session.execute(_LOCK_FOR_CHANGE, {"vfolder_id": vfolder_id})).first()
        return None if found is None else LockedVFolder(*found)

    async def mark_ready(self, vfolder_id: uuid.UUID, *, usage_scanned_at: datetime) -> None:
        """A clone's target, copied and counted: ready, its ledger as true as a scan's."""
        await self._session.execute(
            update(_VFOLDERS)
            .where(_VFOLDERS.c.id == vfolder_id)
            .values(status=VFolderStatus.READY.value, usage_scanned_at=usage_scanned_at)
        )

    async def get_live_by_name(
        self, *, owner_type: OwnerType, owner_id: str, name: str
    ) -> VFolderRow | None:
        found = await self._session.execute(
            _LIVE_BY_NAME, {"owner_type": owner_type.value, "owner_id": owner_id, "name": name}
        )
        return found.scalar_one_or_none()

    async def by_id_or_live_name(
        self, vfolder_id: uuid.UUID, *, owner_type: OwnerType, owner_id: str, name: str
    ) -> Sequence[VFolderRow]:
        """The vfolder with this id, and the live one of this owner with this name (one row
        when they are the same, none when both are free)."""
        found = await self._session.execute(
            _BY_ID_OR_LIVE_NAME,
            {
                "vfolder_id": vfolder_id,
                "owner_type": owner_type.value,
                "owner_id": owner_id,
                "name": name,
            },
        )
        return found.scalars().all()

    async def add(self, row: VFolderRow) -> VFolderRow:
        """``row`` inserted, as the session now holds it (with its defaults); raises
        ``DuplicateVFolder`` when the id or the live name is taken. ``ON CONFLICT DO NOTHING``
        rather than a savepoint around a failing insert: one statement instead of three."""
        values = {
            column.key: getattr(row, column.key)
            for column in VFolderRow.__table__.columns
            if getattr(row, column.key) is not None
        }
        dialect = self._session.get_bind().dialect.name
        insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
        inserted = await self._session.scalars(
            insert(VFolderRow).values(values).on_conflict_do_nothing().returning(VFolderRow)
        )
        added = inserted.one_or_none()
        if added is None:
            raise DuplicateVFolder(f"vfolder id {row.id} or live name {row.name!r} is taken")
        return added

    async def mark_deleted(self, row: VFolderRow, *, at: datetime) -> None:
        """``row`` deleted as of ``at``, by one statement: a deleted vfolder holds no live
        name, so no collision is possible and no savepoint is needed (taking one flushed the
        session first: a tenth of a create + delete). ``row`` shows the new state."""
        await self._session.execute(_MARK_DELETED, {"vfolder_id": row.id, "at": at})
        set_committed_value(row, "status", VFolderStatus.DELETED.value)
        set_committed_value(row, "deleted_at", at)
        set_committed_value(row, "updated_at", at)

    async def save(self, row: VFolderRow) -> None:
        """Flush changes to ``row``; raises ``DuplicateVFolder`` on a name collision."""
        try:
            async with self._session.begin_nested():
                await self._session.flush([row])
        except IntegrityError as exc:
            raise DuplicateVFolder(str(exc.orig)) from exc

    async def add_usage(self, vfolder_id: uuid.UUID, *, bytes_delta: int, count_delta: int) -> None:
        """Apply a usage change in SQL (``x = x + d``), so concurrent writers never lose one."""
        if bytes_delta == 0 and count_delta == 0:
            return
        await self._session.execute(
            _ADD_USAGE,
            {"vfolder_id": vfolder_id, "bytes_delta": bytes_delta, "count_delta": count_delta},
        )

    async def mark_scanned(self, vfolder_id: uuid.UUID, at: datetime) -> None:
        """A scan checked the ledger against the disk (as of ``at``, when it started)."""
        await self._session.execute(
            update(VFolderRow)
            .where(VFolderRow.id == vfolder_id)
            # Not a change of the vfolder: its ``updated_at`` stays.
            .values(usage_scanned_at=at, updated_at=VFolderRow.updated_at)
        )

    async def statuses_on_volume(self, volume: str) -> dict[uuid.UUID, VFolderStatus]:
        """Every vfolder row of ``volume``, deleted ones too, with its status."""
        stmt = select(VFolderRow.id, VFolderRow.status).where(VFolderRow.volume == volume)
        return {
            vfolder_id: VFolderStatus(status)
            for vfolder_id, status in await self._session.execute(stmt)
        }

    async def list_page(
        self,
        where: VFolderFilter,
        *,
        after: tuple[str, uuid.UUID] | None,
        limit: int,
    ) -> Sequence[VFolderRow]:
        """Up to ``limit`` rows ordered by (name, id), strictly after the ``after`` key."""
        stmt = self._filtered(select(VFolderRow), where)
        if after is not None:
            stmt = stmt.where(tuple_(VFolderRow.name, VFolderRow.id) > tuple_(*after))
        stmt = stmt.order_by(VFolderRow.name, VFolderRow.id).limit(limit)
        return (await self._session.execute(stmt)).scalars().all()

    @staticmethod
    def _filtered(stmt: VFolderSelect, where: VFolderFilter) -> VFolderSelect:
        if where.visibility is not None:
            stmt = stmt.where(_visible(where.visibility, where.mode or Mode.RO))
        if where.volume is not None:
            stmt = stmt.where(VFolderRow.volume == where.volume)
        if where.owner_type is not None:
            stmt = stmt.where(VFolderRow.owner_type == where.owner_type.value)
        if where.owner_id is not None:
            stmt = stmt.where(VFolderRow.owner_id == where.owner_id)
        if where.name is not None:
            stmt = stmt.where(VFolderRow.name == where.name)
        if where.status is not None:
            stmt = stmt.where(VFolderRow.status == where.status.value)
        return stmt


def _visible(scope: VisibilityScope, mode: Mode) -> ColumnElement[bool]:
    """Rows where the scope's caller has at least ``mode``: as the owning user (``rwd``), as a
    member of the owning group (the group mode), or through a grant to them or a group."""
    strong_enough = [m.value for m in mode.at_least()]
    groups = sorted(scope.group_ids)
    grantee = []
    owned = []
    if scope.user_id is not None:
        owned.append(
            (VFolderRow.owner_type == OwnerType.USER.value) & (VFolderRow.owner_id == scope.user_id)
        )
        grantee.append(
            (GrantRow.grantee_type == GranteeType.USER.value)
            & (GrantRow.grantee_id == scope.user_id)
        )
    if groups:
        owned.append(
            (VFolderRow.owner_type == OwnerType.GROUP.value)
            & VFolderRow.owner_id.in_(groups)
            & VFolderRow.group_mode.in_(strong_enough)
        )
        grantee.append(
            (GrantRow.grantee_type == GranteeType.GROUP.value) & GrantRow.grantee_id.in_(groups)
        )
    if not owned:
        return false()
    granted = (
        select(GrantRow.vfolder_id)
        .where(
            GrantRow.vfolder_id == VFolderRow.id, or_(*grantee), GrantRow.mode.in_(strong_enough)
        )
        .exists()
    )
    return or_(*owned, granted)
