"""All SQL about tasks. Claims and every later write of a running task are conditional on the
claiming node still holding it, so a node that lost its lease cannot report over its
successor."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.tasks.models import NodeRow, TaskRow, TaskState


class TaskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, row: TaskRow) -> None:
        self._session.add(row)
        await self._session.flush()

    async def get(self, task_id: uuid.UUID) -> TaskRow | None:
        stmt = (
            select(TaskRow).where(TaskRow.id == task_id).execution_options(populate_existing=True)
        )
        return (await self._session.execute(stmt)).scalar_one_or_none()

    async def for_owner(self, owner: str | None, *, limit: int) -> Sequence[TaskRow]:
        stmt = select(TaskRow).order_by(TaskRow.created_at.desc()).limit(limit)
        if owner is not None:
            stmt = stmt.where(TaskRow.owner == owner)
        return (await self._session.execute(stmt)).scalars().all()

    async def live(self, *, kind: str, target: str) -> TaskRow | None:
        """The queued or running task of this kind and target (at most one: a unique index)."""
        stmt = select(TaskRow).where(
            TaskRow.kind == kind,
            TaskRow.target == target,
            TaskRow.state.in_([TaskState.QUEUED.value, TaskState.RUNNING.value]),
        )
        return (await self._session.execute(stmt)).scalar_one_or_none()

    async def prune_finished(self, *, owner: str, before: datetime) -> None:
        """Forgets ``owner``'s tasks that finished before ``before``."""
        await self._session.execute(
            delete(TaskRow).where(
                TaskRow.owner == owner,
                TaskRow.state.in_([s.value for s in TaskState if s.final]),
                TaskRow.finished_at < before,
            )
        )

    async def claim(
        self, *, node: str, now: datetime, lease_until: datetime, kinds: Sequence[str]
    ) -> TaskRow | None:
        """The oldest task that is queued, or running on a node whose lease ran out. On
        PostgreSQL, ``SKIP LOCKED`` lets nodes claim side by side; SQLite's write lock
        (BEGIN IMMEDIATE) serialises claims instead."""
        stmt = (
            select(TaskRow)
            .where(
                TaskRow.kind.in_(kinds),
                or_(
                    TaskRow.state == TaskState.QUEUED.value,
                    (TaskRow.state == TaskState.RUNNING.value) & (TaskRow.lease_expires_at < now),
                ),
            )
            .order_by(TaskRow.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        row = (await self._session.execute(stmt)).scalar_one_or_none()
        if row is None:
            return None
        row.state = TaskState.RUNNING.value
        row.node = node
        row.lease_expires_at = lease_until
        row.attempts += 1
        row.started_at = row.started_at or now
        await self._session.flush()
        return row

    async def renew(self, task_id: uuid.UUID, *, node: str, until: datetime) -> TaskRow | None:
        """Extends the lease while ``node`` still holds it; the row (for its cancel flag)."""
        result = await self._session.execute(
            update(TaskRow)
            .where(
                TaskRow.id == task_id,
                TaskRow.node == node,
                TaskRow.state == TaskState.RUNNING.value,
            )
            .values(lease_expires_at=until)
        )
        if not getattr(result, "rowcount", 0):
            return None
        return await self.get(task_id)

    async def hand_back(self, task_id: uuid.UUID, *, node: str) -> None:
        """Queued again, for any node, when the node running it stops cleanly."""
        await self._session.execute(
            update(TaskRow)
            .where(
                TaskRow.id == task_id,
                TaskRow.node == node,
                TaskRow.state == TaskState.RUNNING.value,
            )
            .values(state=TaskState.QUEUED.value, node=None, lease_expires_at=None)
        )

    async def progress(
        self, task_id: uuid.UUID, *, node: str, current: int, total: int | None, unit: str
    ) -> bool:
        result = await self._session.execute(
            update(TaskRow)
            .where(
                TaskRow.id == task_id,
                TaskRow.node == node,
                TaskRow.state == TaskState.RUNNING.value,
            )
            .values(progress_current=current, progress_total=total, progress_unit=unit)
        )
        return bool(getattr(result, "rowcount", 0))

    async def finish(
        self,
        task_id: uuid.UUID,
        *,
        node: str | None,
        state: TaskState,
        now: datetime,
        result: str | None = None,
        problem: str | None = None,
    ) -> bool:
        """Final state; ``node`` None finishes a task nobody runs (a queued one cancelled)."""
        holder = TaskRow.node == node if node is not None else TaskRow.node.is_(None)
        outcome = await self._session.execute(
            update(TaskRow)
            .where(
                TaskRow.id == task_id,
                holder,
                TaskRow.state.in_([TaskState.RUNNING.value, TaskState.QUEUED.value]),
            )
            .values(
                state=state.value,
                result=result,
                problem=problem,
                finished_at=now,
                lease_expires_at=None,
            )
        )
        return bool(getattr(outcome, "rowcount", 0))


class NodeRepository:
    """The nodes' liveness leases."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def renew(self, node: str, *, now: datetime, until: datetime) -> None:
        """Extends ``node``'s lease to ``until``, registering the node if it has none."""
        renewed = await self._session.execute(
            update(NodeRow).where(NodeRow.id == node).values(alive_until=until)
        )
        if not getattr(renewed, "rowcount", 0):
            self._session.add(NodeRow(id=node, started_at=now, alive_until=until))
            await self._session.flush()

    async def forget_dead_before(self, moment: datetime) -> None:
        await self._session.execute(delete(NodeRow).where(NodeRow.alive_until < moment))

    async def remove(self, node: str) -> None:
        await self._session.execute(delete(NodeRow).where(NodeRow.id == node))
