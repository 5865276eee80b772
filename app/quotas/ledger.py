"""Reservations: how every write stays inside every quota it touches, under any concurrency.

A write first reserves the bytes (and entries) it may add, in one transaction that locks the
limits of the vfolder's scopes and refuses when ``used + reserved + n > limit``. Finishing
*settles* the reservation inside the same transaction that records the change on disk in the
usage ledger; aborting releases it. Settling checks the write's whole growth again, against
what is used and what the *other* writes reserve (``used + growth + others ≤ limit``), so no
earlier reservation — too small, merged, released — can carry a write past a limit. Scopes
without a limit cost no lock at all."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import QuotaExceeded, VFolderDeleted, VFolderNotFound
from app.observability.logging import get_logger
from app.observability.metrics import Metrics
from app.quotas.group_commit import BatchedChange, ChangeQueue, QueuedChange
from app.quotas.models import ReservationRow
from app.quotas.repository import (
    InScopes,
    QuotaRepository,
    Scope,
    ScopeLimit,
    ScopeUsage,
    scopes_of,
)
from app.vfolders.models import VFolderRow, VFolderStatus
from app.vfolders.repository import LockedVFolder, VFolderRepository
from drivers.types import Usage

log = get_logger(__name__)

ALERT_LEVELS = (95, 80)  # percent of a byte limit, highest first
WRITE_RESERVATION_TTL = timedelta(hours=6)


def write_holder() -> str:
    """A fresh holder name for one PUT or form upload."""
    return f"write:{uuid.uuid4().hex}"


def upload_holder(upload_id: uuid.UUID) -> str:
    return f"upload:{upload_id.hex}"


@dataclass(frozen=True, slots=True)
class Growth:
    bytes: int = 0
    files: int = 0

    def __bool__(self) -> bool:
        return self.bytes > 0 or self.files > 0


class ReservationCover:
    """Reserves as bytes arrive, for writes of unknown length (chunked PUT, form parts,
    deferred-length uploads): ahead by at least ``step`` bytes, so most batches cost nothing."""

    def __init__(
        self,
        ledger: QuotaLedger,
        vfolder_id: uuid.UUID,
        holder: str,
        *,
        covered: int = 0,
        step: int = 16 * 1024 * 1024,
    ) -> None:
        self._ledger = ledger
        self._vfolder_id = vfolder_id
        self._holder = holder
        self.covered = covered
        self._step = step

    async def __call__(self, written: int) -> None:
        if written <= self.covered:
            return
        more = max(written - self.covered, self._step)
        try:
            await self._ledger.reserve(self._vfolder_id, holder=self._holder, bytes=more)
        except QuotaExceeded:
            if more == written - self.covered:
                raise
            # No room for the step ahead: exactly what arrived may still fit.
            more = written - self.covered
            await self._ledger.reserve(self._vfolder_id, holder=self._holder, bytes=more)
        self.covered += more


class VFolderChange:
    """One change of a vfolder's content, inside the transaction that holds its row lock."""

    def __init__(self, ledger: QuotaLedger, session: AsyncSession, vfolder: LockedVFolder) -> None:
        self._ledger = ledger
        self.session = session
        self.vfolder = vfolder

    async def settle(self, delta: Usage, *, holder: str | None = None) -> None:
        """Record ``delta`` (checked against the quotas beyond ``holder``'s reservation, which
        it replaces). Call it *before* changing the disk, with the change foreseen under the
        row lock, so a refusal leaves nothing to undo."""
        await self._ledger.settle(self.session, self.vfolder, holder=holder, delta=delta)

    async def correct(self, difference: Usage) -> None:
        """What the disk really changed beyond what ``settle`` foresaw (nothing, unless
        someone wrote through a mount meanwhile): recorded as it is, so the ledger stays
        exact."""
        await VFolderRepository(self.session).add_usage(
            self.vfolder.id, bytes_delta=difference.bytes, count_delta=difference.entries
        )


class QuotaLedger:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        metrics: Metrics,
        *,
        node: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        # This node's name: each reservation it makes for a write under way is released as
        # soon as the node is known dead (``app/tasks/nodes.py``).
        self.node = node
        self._batches = ChangeQueue(self._commit_batch)

    async def reserve(
        self,
        vfolder_id: uuid.UUID,
        *,
        holder: str,
        bytes: int,
        files: int = 0,
        ttl: timedelta = WRITE_RESERVATION_TTL,
        fresh: bool = False,
    ) -> None:
        """Reserve (or add to ``holder``'s reservation; ``fresh``: the holder has none yet)
        in its own transaction, held by this node; raises ``QuotaExceeded`` naming the first
        scope that has no room — once the reservations of dead writers are released, so that
        they never refuse a write that fits. Kept to few statements: on SQLite the
        transaction holds the database's write lock throughout."""
        for attempt in (1, 2):
            try:
                async with self._sessions() as session, session.begin():
                    vfolder = await _live_vfolder(session, vfolder_id)
                    await self.reserve_in(
                        session,
                        vfolder,
                        holder=holder,
                        bytes=bytes,
                        files=files,
                        ttl=ttl,
                        fresh=fresh,
                    )
                return
            except QuotaExceeded:
                if attempt == 2 or not await self.release_abandoned():
                    raise

    async def reserve_in(
        self,
        session: AsyncSession,
        vfolder: VFolderRow,
        *,
        holder: str,
        bytes: int,
        files: int = 0,
        ttl: timedelta = WRITE_RESERVATION_TTL,
        fresh: bool = False,
        durable: bool = False,
    ) -> None:
        """``reserve``, inside the caller's transaction (a clone reserves for the vfolder it
        creates in that same transaction). ``durable``: held by no node (a clone's, which
        its task carries from node to node)."""
        node = None if durable else self.node
        growth = Growth(max(0, bytes), max(0, files))
        quotas = QuotaRepository(session)
        if growth:
            await self._check_room(quotas, vfolder, growth)
        expires_at = datetime.now(UTC) + ttl
        existing = None if fresh else await quotas.reservation(holder, for_update=True)
        if existing is None:
            await quotas.add_reservation(
                ReservationRow(
                    id=uuid.uuid4(),
                    vfolder_id=vfolder.id,
                    holder=holder,
                    bytes=growth.bytes,
                    files=growth.files,
                    expires_at=expires_at,
                    node=node,
                )
            )
        else:
            existing.bytes += growth.bytes
            existing.files += growth.files
            existing.expires_at = expires_at
            existing.node = node

    @contextlib.asynccontextmanager
    async def change(self, vfolder_id: uuid.UUID) -> AsyncIterator[VFolderChange]:
        """A short transaction holding the vfolder's row lock; commits on success."""
        async with self._sessions() as session, session.begin():
            vfolder = await VFolderRepository(session).lock_for_change(vfolder_id)
            if vfolder is None:
                raise VFolderNotFound(f"vfolder {vfolder_id} not found")
            if vfolder.status == VFolderStatus.DELETED.value:
                raise VFolderDeleted(f"vfolder {vfolder_id} was deleted meanwhile")
            yield VFolderChange(self, session, vfolder)

    async def change_together(self, vfolder_id: uuid.UUID, change: BatchedChange) -> None:
        """``change`` made and recorded in the next batch of its vfolder's changes (group
        commit, ``app/quotas/group_commit.py``), checked against the quotas in arrival order;
        raises ``QuotaExceeded``, or what stopped it on disk. For changes that hold no
        reservation: a batch checks each one's whole growth, as ``settle`` does."""
        await self._batches.submit(vfolder_id, change)

    async def _commit_batch(self, vfolder_id: uuid.UUID, batch: list[QueuedChange]) -> None:
        """One transaction for the batch: the row lock, each change foreseen, the quota check
        of them all, the admitted ones made on disk, one usage update. A change that is
        refused or fails is told at once (it changed nothing); the others once committed."""
        made: list[QueuedChange] = []
        async with self.change(vfolder_id) as change:
            quotas = QuotaRepository(change.session)
            limits = await quotas.limits_for_update(scopes_of(change.vfolder))
            # Without a limit nothing can refuse: no change needs foreseeing.
            admitted = await self._admit_batch(quotas, limits, batch) if limits else batch
            total = Usage()
            freed = False
            for queued in admitted:
                try:
                    made_now = await queued.run(queued.change.make)
                except Exception as exc:
                    queued.fail(exc)
                    continue
                made.append(queued)
                total += made_now
                freed = freed or made_now.bytes < 0
            await VFolderRepository(change.session).add_usage(
                vfolder_id, bytes_delta=total.bytes, count_delta=total.entries
            )
            if freed and limits:
                # Growth was measured against the thresholds by ``_weigh``.
                await self.track_alerts(change.session, scopes_of(change.vfolder))
        for queued in made:
            queued.succeed()

    async def _admit_batch(
        self,
        quotas: QuotaRepository,
        limits: list[tuple[Scope, ScopeLimit]],
        batch: list[QueuedChange],
    ) -> list[QueuedChange]:
        """The changes of ``batch`` that fit, in order; the others are told why not."""
        # Side by side: looking is all a foresight does.
        outlooks = await asyncio.gather(
            *(queued.run(queued.change.foresee) for queued in batch), return_exceptions=True
        )
        foreseen: list[tuple[QueuedChange, Usage]] = []
        for queued, outlook in zip(batch, outlooks, strict=True):
            if isinstance(outlook, Usage):
                foreseen.append((queued, outlook))
            elif isinstance(outlook, Exception):
                queued.fail(outlook)
            else:
                raise outlook
        growths = [Growth(max(0, usage.bytes), max(0, usage.entries)) for _, usage in foreseen]
        verdicts = await self._weigh(quotas, limits, growths)
        admitted = []
        for (queued, _), refusal in zip(foreseen, verdicts, strict=True):
            if refusal is None:
                admitted.append(queued)
            else:
                queued.fail(refusal)
        return admitted

    async def reserved(self, holder: str) -> int:
        async with self._sessions() as session:
            row = await QuotaRepository(session).reservation(holder)
        return row.bytes if row is not None else 0

    async def merge(self, holders: list[str], *, into: str, ttl: timedelta) -> None:
        """Hand several reservations (the parts of a concatenation) to one new holder,
        without a new check: their bytes were already counted."""
        async with self._sessions() as session, session.begin():
            quotas = QuotaRepository(session)
            dropped = [row for h in holders if (row := await quotas.drop_reservation(h))]
            if not dropped:
                return
            await quotas.add_reservation(
                ReservationRow(
                    id=uuid.uuid4(),
                    vfolder_id=dropped[0].vfolder_id,
                    holder=into,
                    bytes=sum(row.bytes for row in dropped),
                    files=sum(row.files for row in dropped),
                    expires_at=datetime.now(UTC) + ttl,
                    node=self.node,
                )
            )

    async def hold(
        self, vfolder_id: uuid.UUID, *, holder: str, at_least: int, ttl: timedelta
    ) -> int:
        """A write resumes (a tus PATCH): ``holder``'s reservation becomes this node's, topped
        up to ``at_least`` bytes if it holds less (it was released with a dead node). Returns
        the bytes it holds."""
        async with self._sessions() as session:
            existing = await QuotaRepository(session).reservation(holder)
        held = existing.bytes if existing is not None else 0
        await self.reserve(vfolder_id, holder=holder, bytes=max(0, at_least - held), ttl=ttl)
        return max(held, at_least)

    async def resize(
        self, vfolder_id: uuid.UUID, *, holder: str, bytes: int, ttl: timedelta
    ) -> None:
        """``holder``'s reservation becomes ``bytes``: growth is checked against the quotas,
        and what it held beyond ``bytes`` is given back (a deferred-length upload reserves
        ahead of its bytes, then declares a smaller length)."""
        held = await self.reserved(holder)
        if bytes > held:
            await self.reserve(vfolder_id, holder=holder, bytes=bytes - held, ttl=ttl)
            return
        async with self._sessions() as session, session.begin():
            await QuotaRepository(session).shrink_reservation(holder, to=bytes)

    async def detach(self, holder: str) -> None:
        """The write paused (a tus upload between PATCHes): its reservation stays, held by no
        node, until the upload finishes or expires."""
        async with self._sessions() as session, session.begin():
            await QuotaRepository(session).detach_reservation(holder)

    async def release(self, holder: str) -> None:
        async with self._sessions() as session, session.begin():
            await QuotaRepository(session).drop_reservation(holder)

    async def release_abandoned(self) -> int:
        """Releases the reservations of writers that died: held by a node whose lease ran out,
        or past their expiry. Each is logged."""
        now = datetime.now(UTC)
        async with self._sessions() as session:
            abandoned = [
                (row.holder, row.node, row.vfolder_id, row.bytes)
                for row in await QuotaRepository(session).abandoned_reservations(now)
            ]
        released = 0
        for holder, node, vfolder_id, size in abandoned:
            async with self._sessions() as session, session.begin():
                if not await QuotaRepository(session).drop_if_abandoned(holder, now):
                    continue
            released += 1
            log.warning(
                "released an abandoned quota reservation",
                extra={
                    "holder": holder,
                    "dead_node": node,
                    "vfolder_id": str(vfolder_id),
                    "reserved_bytes": size,
                },
            )
        return released

    async def settle(
        self, session: AsyncSession, vfolder: InScopes, *, holder: str | None, delta: Usage
    ) -> None:
        """Inside the transaction that changed the vfolder (its row locked): the holder's
        reservation becomes ``delta`` of usage. Raises ``QuotaExceeded`` (and the caller's
        transaction rolls back) when ``delta`` does not fit beside the usage and the other
        writes' reservations."""
        quotas = QuotaRepository(session)
        if holder is not None:
            await quotas.drop_reservation(holder)
        # The whole growth against what is used and what *others* reserve, whatever this
        # holder had reserved: a reservation is a promise of room made earlier, and the
        # bytes that really arrive (a concatenation listing one part twice, a reservation
        # released with its dead node, a limit lowered meanwhile) may not match it.
        growth = Growth(max(0, delta.bytes), max(0, delta.entries))
        if growth:
            await self._check_room(quotas, vfolder, growth)
        await VFolderRepository(session).add_usage(
            vfolder.id, bytes_delta=delta.bytes, count_delta=delta.entries
        )
        if delta.bytes < 0:
            # Growth was already measured against the thresholds when it was reserved.
            await self.track_alerts(session, scopes_of(vfolder))

    async def _check_room(self, quotas: QuotaRepository, vfolder: InScopes, growth: Growth) -> None:
        limits = await quotas.limits_for_update(scopes_of(vfolder))
        (refusal,) = await self._weigh(quotas, limits, [growth])
        if refusal is not None:
            raise refusal

    async def _weigh(
        self,
        quotas: QuotaRepository,
        all_limits: list[tuple[Scope, ScopeLimit]],
        growths: list[Growth],
    ) -> list[QuotaExceeded | None]:
        """Each growth in turn against the limits of the vfolder's scopes (locked by the
        caller), the usage and reservations, and the growths admitted before it: ``None`` for
        one that fits, its refusal for one that does not. The thresholds are moved by what
        was admitted."""
        bytes_grow = any(growth.bytes for growth in growths)
        files_grow = any(growth.files for growth in growths)
        limits = [
            (scope, limit)
            for scope, limit in all_limits
            # Only a limit on a measure that grows can refuse (or move its threshold): the
            # others need no usage figures, the costliest statement of a write.
            if (bytes_grow and limit.limit_bytes is not None)
            or (files_grow and limit.limit_files is not None)
        ]
        if not limits:
            return [None] * len(growths)
        usages = await quotas.usages([scope for scope, _ in limits])
        verdicts: list[QuotaExceeded | None] = []
        for growth in growths:
            verdicts.append(_refusal(self._metrics, limits, usages, growth))
            if verdicts[-1] is None:
                usages = [
                    replace(
                        usage,
                        used_bytes=usage.used_bytes + growth.bytes,
                        used_files=usage.used_files + growth.files,
                    )
                    for usage in usages
                ]
        if any(verdict is None for verdict in verdicts):
            for (scope, limit), usage in zip(limits, usages, strict=True):
                committed = usage.used_bytes + usage.reserved_bytes
                await self._note_level(quotas, scope, limit, committed)
        return verdicts

    async def track_alerts(self, session: AsyncSession, scopes: list[Scope]) -> None:
        """Measures each limited scope against its thresholds (after a limit is set, space
        is freed, or reconciliation corrected the ledger)."""
        quotas = QuotaRepository(session)
        for scope in scopes:
            limit = await quotas.get(scope)
            if limit is not None:
                usage = await quotas.usage(scope)
                await self._note_level(
                    quotas, scope, limit, usage.used_bytes + usage.reserved_bytes
                )

    async def _note_level(
        self, quotas: QuotaRepository, scope: Scope, limit: Limits, committed_bytes: int
    ) -> None:
        """Sets the usage gauge (bytes used or reserved by writes under way, over the limit)
        and tells each threshold crossing, up or down, once, as a structured log event; the
        new level is recorded in the caller's transaction (a refused write undoes it)."""
        if not limit.limit_bytes:
            return
        ratio = committed_bytes / limit.limit_bytes
        self._metrics.quota_usage_ratio.labels(
            scope_type=scope.type.value, scope_id=scope.id, volume=scope.volume
        ).set(ratio)
        level = next((lv for lv in ALERT_LEVELS if ratio * 100 >= lv), 0)
        if level == limit.alert_level:
            return
        previous = limit.alert_level
        log.warning(
            "quota threshold crossed",
            extra={
                "event": "quota_threshold",
                "scope_type": scope.type.value,
                "scope_id": scope.id,
                "volume": scope.volume,
                "level_percent": level,
                "previous_level_percent": previous,
                "committed_bytes": committed_bytes,
                "limit_bytes": limit.limit_bytes,
            },
        )
        await quotas.set_alert_level(scope, level)


class Limits(Protocol):
    """A scope's limits: a mapped row, or ``ScopeLimit``."""

    @property
    def limit_bytes(self) -> int | None: ...
    @property
    def limit_files(self) -> int | None: ...
    @property
    def alert_level(self) -> int: ...


def _refusal(
    metrics: Metrics,
    limits: Sequence[tuple[Scope, Limits]],
    usages: Sequence[ScopeUsage],
    growth: Growth,
) -> QuotaExceeded | None:
    """The refusal of ``growth`` by the first scope it does not fit in, if any."""
    try:
        for (scope, limit), usage in zip(limits, usages, strict=True):
            _refuse_beyond(metrics, scope, limit, usage, growth)
    except QuotaExceeded as refusal:
        return refusal
    return None


def _refuse_beyond(
    metrics: Metrics, scope: Scope, limit: Limits, usage: ScopeUsage, growth: Growth
) -> None:
    measures = (
        ("bytes", limit.limit_bytes, usage.used_bytes, usage.reserved_bytes, growth.bytes),
        ("files", limit.limit_files, usage.used_files, usage.reserved_files, growth.files),
    )
    for measure, ceiling, used, reserved, more in measures:
        if ceiling is None or more <= 0 or used + reserved + more <= ceiling:
            continue
        metrics.quota_refusals.labels(scope_type=scope.type.value).inc()
        raise QuotaExceeded(
            f"{more} more {measure} would exceed the {scope.type.value} quota of "
            f"{scope.label}: limit {ceiling}, used {used}, "
            f"reserved by writes in progress {reserved}",
            scope_type=scope.type.value,
            scope_id=scope.id,
            volume=scope.volume,
            **{
                f"limit_{measure}": ceiling,
                f"used_{measure}": used,
                f"reserved_{measure}": reserved,
                f"requested_{measure}": more,
            },
        )


# Built once: every write runs it.
_LIVE_VFOLDER_KEY_SHARE = (
    select(VFolderRow)
    .where(VFolderRow.id == bindparam("vfolder_id"))
    .with_for_update(key_share=True)
    .execution_options(populate_existing=True)
)


async def _live_vfolder(session: AsyncSession, vfolder_id: uuid.UUID) -> VFolderRow:
    """The vfolder, key-share locked *before* any limit is: the reservation inserted later
    needs that lock (its foreign key), and a commit holds the vfolder's row lock while it
    locks the limits, so taking the two in the other order could deadlock on PostgreSQL."""
    found = await session.execute(_LIVE_VFOLDER_KEY_SHARE, {"vfolder_id": vfolder_id})
    vfolder = found.scalar_one_or_none()
    if vfolder is None:
        raise VFolderNotFound(f"vfolder {vfolder_id} not found")
    if vfolder.status == VFolderStatus.DELETED.value:
        raise VFolderDeleted(f"vfolder {vfolder_id} was deleted")
    return vfolder
