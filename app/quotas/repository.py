"""All SQL about quotas: limits, the usage of a scope, reservations."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Select,
    String,
    Table,
    Uuid,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.quotas.models import QuotaRow, ReservationRow, ScopeType
from app.tasks.models import NodeRow
from app.vfolders.models import VFolderRow, VFolderStatus


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    type: ScopeType
    id: str
    volume: str

    @property
    def label(self) -> str:
        return f"{self.type.value}:{self.id}@{self.volume}"


@dataclass(frozen=True, slots=True)
class ScopeUsage:
    used_bytes: int = 0
    used_files: int = 0
    reserved_bytes: int = 0
    reserved_files: int = 0


class InScopes(Protocol):
    """What places a vfolder in its quota scopes: a mapped row, or ``LockedVFolder``."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def owner_type(self) -> str: ...
    @property
    def owner_id(self) -> str: ...
    @property
    def volume(self) -> str: ...


def scopes_of(vfolder: InScopes) -> list[Scope]:
    """Every scope a write into ``vfolder`` counts against, in the order their limits are
    locked (always the same order, so concurrent writers cannot deadlock)."""
    owner = Scope(ScopeType(vfolder.owner_type), vfolder.owner_id, vfolder.volume)
    own = Scope(ScopeType.VFOLDER, str(vfolder.id), vfolder.volume)
    # The dataclass order, by plain strings: comparing the enum members is slow.
    return sorted([owner, own], key=lambda scope: (scope.type.value, scope.id, scope.volume))


def _members(scope_type: ScopeType, n: int) -> list[ColumnElement[bool]]:
    """The live vfolders of the ``n``-th scope of a statement, as SQL conditions on
    ``vfolders`` with bound parameters ``id<n>`` and ``volume<n>``."""
    live = VFolderRow.status != VFolderStatus.DELETED.value
    if scope_type is ScopeType.VFOLDER:
        return [VFolderRow.id == bindparam(f"id{n}", type_=Uuid), live]
    return [
        VFolderRow.owner_type == scope_type.value,
        VFolderRow.owner_id == bindparam(f"id{n}", type_=String),
        VFolderRow.volume == bindparam(f"volume{n}", type_=String),
        live,
    ]


@functools.cache
def _usages_statement(scope_types: tuple[ScopeType, ...]) -> Select[Any]:
    """For each scope: used bytes, used entries, reserved bytes, reserved entries, as scalar
    subqueries of one statement. Built once per shape (it is on every write's path)."""
    totals: list[ScalarSelect[Any]] = []
    for n, scope_type in enumerate(scope_types):
        members = _members(scope_type, n)
        reservations = (
            select(ReservationRow.bytes, ReservationRow.files)
            .join(VFolderRow, and_(VFolderRow.id == ReservationRow.vfolder_id, *members))
            .subquery()
        )
        totals += [
            select(func.coalesce(func.sum(column), 0)).where(*members).scalar_subquery()
            for column in (VFolderRow.used_bytes, VFolderRow.file_count)
        ]
        totals += [
            select(func.coalesce(func.sum(column), 0)).scalar_subquery()
            for column in (reservations.c.bytes, reservations.c.files)
        ]
    return select(*totals)


def _usages_parameters(scopes: list[Scope]) -> dict[str, object]:
    parameters: dict[str, object] = {}
    for n, scope in enumerate(scopes):
        if scope.type is ScopeType.VFOLDER:
            parameters[f"id{n}"] = uuid.UUID(scope.id)
        else:
            parameters[f"id{n}"] = scope.id
            parameters[f"volume{n}"] = scope.volume
    return parameters


@dataclass(frozen=True, slots=True)
class ScopeLimit:
    """A scope's limits as a write weighs them. Read as plain columns: loading mapped rows
    cost more than the statement; a change of ``alert_level`` is written by statement."""

    scope_type: str
    scope_id: str
    volume: str
    limit_bytes: int | None
    limit_files: int | None
    alert_level: int


# Built once, run by every write: building a statement cost more CPU than running it.
_QUOTAS = cast(Table, QuotaRow.__table__)
_SCOPE_KEY = (_QUOTAS.c.scope_type, _QUOTAS.c.scope_id, _QUOTAS.c.volume)


@functools.cache
def _limits_for_update(scopes: int) -> Select[Any]:
    """The limits of ``scopes`` scope keys (bound as ``type<n>``, ``id<n>``, ``volume<n>``),
    locked in key order. One statement per number of scopes, built once: an expanding ``IN``
    is re-rendered at every execution, which cost more CPU than running it."""
    keys = [
        and_(
            _QUOTAS.c.scope_type == bindparam(f"type{n}"),
            _QUOTAS.c.scope_id == bindparam(f"id{n}"),
            _QUOTAS.c.volume == bindparam(f"volume{n}"),
        )
        for n in range(scopes)
    ]
    return (
        select(*_SCOPE_KEY, _QUOTAS.c.limit_bytes, _QUOTAS.c.limit_files, _QUOTAS.c.alert_level)
        .where(or_(*keys))
        .order_by(*_SCOPE_KEY)
        .with_for_update()
    )


_IS_SCOPE = (
    _QUOTAS.c.scope_type == bindparam("key_type"),
    _QUOTAS.c.scope_id == bindparam("key_id"),
    _QUOTAS.c.volume == bindparam("key_volume"),
)
_SET_ALERT_LEVEL = update(_QUOTAS).where(*_IS_SCOPE).values(alert_level=bindparam("level"))
# Every create in a Backend.AI quota scope reads its limit.
_LIMIT = select(QuotaRow).where(*_IS_SCOPE)
_LIMIT_FOR_UPDATE = _LIMIT.with_for_update()
_RESERVATION = select(ReservationRow).where(ReservationRow.holder == bindparam("holder"))
_RESERVATION_FOR_UPDATE = _RESERVATION.with_for_update()


class QuotaRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # -- limits ----------------------------------------------------------------------------

    async def set_alert_level(self, scope: Scope, level: int) -> None:
        await self._session.execute(
            _SET_ALERT_LEVEL,
            {
                "key_type": scope.type.value,
                "key_id": scope.id,
                "key_volume": scope.volume,
                "level": level,
            },
        )

    async def get(self, scope: Scope, *, for_update: bool = False) -> QuotaRow | None:
        found = await self._session.execute(
            _LIMIT_FOR_UPDATE if for_update else _LIMIT,
            {"key_type": scope.type.value, "key_id": scope.id, "key_volume": scope.volume},
        )
        return found.scalar_one_or_none()

    async def limits_for_update(self, scopes: list[Scope]) -> list[tuple[Scope, ScopeLimit]]:
        """The limits of these scopes that exist, locked until the transaction ends (in key
        order, so concurrent writers cannot deadlock): reservations against one scope are
        serialised. One statement."""
        keys = [(scope.type.value, scope.id, scope.volume) for scope in scopes]
        parameters = {
            f"{part}{n}": value
            for n, key in enumerate(keys)
            for part, value in zip(("type", "id", "volume"), key, strict=True)
        }
        found = await self._session.execute(_limits_for_update(len(keys)), parameters)
        by_key = {(row[0], row[1], row[2]): ScopeLimit(*row) for row in found}
        return [
            (scope, by_key[key]) for scope, key in zip(scopes, keys, strict=True) if key in by_key
        ]

    async def put(self, row: QuotaRow) -> None:
        self._session.add(row)
        await self._session.flush()

    async def remove(self, scope: Scope) -> bool:
        result = await self._session.execute(
            delete(QuotaRow).where(
                QuotaRow.scope_type == scope.type.value,
                QuotaRow.scope_id == scope.id,
                QuotaRow.volume == scope.volume,
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def mark_reconciled(self, scopes: list[Scope], at: datetime) -> None:
        """The limits of these scopes (those that exist) were just reconciled."""
        for scope in scopes:
            await self._session.execute(
                update(QuotaRow)
                .where(
                    QuotaRow.scope_type == scope.type.value,
                    QuotaRow.scope_id == scope.id,
                    QuotaRow.volume == scope.volume,
                )
                .values(last_reconciled_at=at)
            )

    async def all_limits(self) -> Sequence[QuotaRow]:
        stmt = select(QuotaRow).order_by(QuotaRow.scope_type, QuotaRow.scope_id, QuotaRow.volume)
        return (await self._session.execute(stmt)).scalars().all()

    async def every_limit_with_usage(self) -> list[tuple[QuotaRow, ScopeUsage]]:
        """Every limit of a live scope with its usage, in five grouped statements however many
        limits there are (the admin's over-threshold listing; a write uses ``usages``)."""
        limits = await self.all_limits()
        by_owner = await self._usage_by_owner()
        by_vfolder = await self._usage_by_vfolder(
            [uuid.UUID(row.scope_id) for row in limits if row.scope_type == ScopeType.VFOLDER.value]
        )
        listed = []
        for row in limits:
            if row.scope_type == ScopeType.VFOLDER.value:
                usage = by_vfolder.get(uuid.UUID(row.scope_id))
                if usage is None:  # a deleted vfolder's limit is gone with it, to every reader
                    continue
            else:
                usage = by_owner.get((row.scope_type, row.scope_id, row.volume), ScopeUsage())
            listed.append((row, usage))
        return listed

    async def _usage_by_owner(self) -> dict[tuple[str, str, str], ScopeUsage]:
        owner = (VFolderRow.owner_type, VFolderRow.owner_id, VFolderRow.volume)
        live = VFolderRow.status != VFolderStatus.DELETED.value
        used = select(*owner, func.sum(VFolderRow.used_bytes), func.sum(VFolderRow.file_count))
        reserved = select(
            *owner, func.sum(ReservationRow.bytes), func.sum(ReservationRow.files)
        ).join(VFolderRow, VFolderRow.id == ReservationRow.vfolder_id)
        usage: dict[tuple[str, str, str], ScopeUsage] = {}
        for owner_type, owner_id, volume, size, files in await self._session.execute(
            used.where(live).group_by(*owner)
        ):
            usage[(owner_type, owner_id, volume)] = ScopeUsage(int(size or 0), int(files or 0))
        for owner_type, owner_id, volume, size, files in await self._session.execute(
            reserved.where(live).group_by(*owner)
        ):
            key = (owner_type, owner_id, volume)
            usage[key] = replace(
                usage.get(key, ScopeUsage()),
                reserved_bytes=int(size or 0),
                reserved_files=int(files or 0),
            )
        return usage

    async def _usage_by_vfolder(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, ScopeUsage]:
        """The usage of those of ``ids`` that are live vfolders."""
        if not ids:
            return {}
        live = (VFolderRow.id.in_(ids), VFolderRow.status != VFolderStatus.DELETED.value)
        used = select(VFolderRow.id, VFolderRow.used_bytes, VFolderRow.file_count).where(*live)
        reserved = (
            select(
                ReservationRow.vfolder_id,
                func.sum(ReservationRow.bytes),
                func.sum(ReservationRow.files),
            )
            .join(VFolderRow, VFolderRow.id == ReservationRow.vfolder_id)
            .where(*live)
            .group_by(ReservationRow.vfolder_id)
        )
        usage = {
            vfolder_id: ScopeUsage(size, files)
            for vfolder_id, size, files in await self._session.execute(used)
        }
        for vfolder_id, size, files in await self._session.execute(reserved):
            usage[vfolder_id] = replace(
                usage[vfolder_id], reserved_bytes=int(size or 0), reserved_files=int(files or 0)
            )
        return usage

    # -- usage -----------------------------------------------------------------------------

    async def usage(self, scope: Scope) -> ScopeUsage:
        return (await self.usages([scope]))[0]

    async def usages(self, scopes: list[Scope]) -> list[ScopeUsage]:
        """Used and reserved of each scope, read in one statement: on PostgreSQL that is one
        snapshot, so a write settling meanwhile (its reservation turning into usage) is seen
        either before or after, never half-way (counted in neither). Read it *after* taking
        the limits' locks, in a statement of its own, so its snapshot follows every write
        that settled before the lock was granted."""
        statement = _usages_statement(tuple(scope.type for scope in scopes))
        row = (await self._session.execute(statement, _usages_parameters(scopes))).one()
        return [
            ScopeUsage(*(int(value) for value in row[i : i + 4])) for i in range(0, len(row), 4)
        ]

    # -- reservations ----------------------------------------------------------------------

    async def reservation(self, holder: str, *, for_update: bool = False) -> ReservationRow | None:
        stmt = _RESERVATION_FOR_UPDATE if for_update else _RESERVATION
        return (await self._session.execute(stmt, {"holder": holder})).scalar_one_or_none()

    async def add_reservation(self, row: ReservationRow) -> None:
        self._session.add(row)
        await self._session.flush()

    async def drop_reservation(self, holder: str) -> ReservationRow | None:
        row = await self.reservation(holder, for_update=True)
        if row is not None:
            await self._session.delete(row)
            await self._session.flush()
        return row

    async def shrink_reservation(self, holder: str, *, to: int) -> None:
        await self._session.execute(
            update(ReservationRow)
            .where(ReservationRow.holder == holder, ReservationRow.bytes > to)
            .values(bytes=to)
        )

    async def detach_reservation(self, holder: str) -> None:
        await self._session.execute(
            update(ReservationRow).where(ReservationRow.holder == holder).values(node=None)
        )

    async def abandoned_reservations(
        self, now: datetime, *, limit: int = 500
    ) -> Sequence[ReservationRow]:
        stmt = select(ReservationRow).where(_abandoned(now)).limit(limit)
        return (await self._session.execute(stmt)).scalars().all()

    async def drop_if_abandoned(self, holder: str, now: datetime) -> bool:
        """Only while still abandoned: a live node may have taken it over meanwhile (a tus
        upload resumed elsewhere)."""
        result = await self._session.execute(
            delete(ReservationRow)
            .where(ReservationRow.holder == holder, _abandoned(now))
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))


def _abandoned(now: datetime) -> ColumnElement[bool]:
    """Past its expiry, or held by a node whose lease has run out (dead, or restarted under
    a new name)."""
    live_node = select(NodeRow.id).where(
        NodeRow.id == ReservationRow.node, NodeRow.alive_until >= now
    )
    return or_(
        ReservationRow.expires_at < now,
        and_(ReservationRow.node.is_not(None), ~live_node.exists()),
    )
