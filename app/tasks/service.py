"""Submitting tasks and answering about them: who may see or cancel which."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.db.session import after_commit
from app.errors import TaskNotFound
from app.tasks.models import TaskRow, TaskState
from app.tasks.repository import TaskRepository
from app.tasks.runner import TaskRunner

SCHEDULER = "system:scheduler"  # the owner of tasks the service schedules itself


def wake_after_commit(session: AsyncSession, runner: TaskRunner) -> None:
    """This node looks for the task just submitted as soon as it is committed."""

    async def wake() -> None:
        runner.wake()

    after_commit(session, wake)


def owner_of(principal: Principal) -> str:
    return f"{principal.kind.value}:{principal.id}"


async def submit(session: AsyncSession, *, kind: str, target: str, owner: str) -> TaskRow:
    """A new queued task, or the live one of the same kind and target (cluster-wide)."""
    try:
        async with session.begin_nested():
            row = TaskRow(id=uuid.uuid4(), kind=kind, target=target, owner=owner)
            await TaskRepository(session).add(row)
            return row
    except IntegrityError:
        live = await TaskRepository(session).live(kind=kind, target=target)
        if live is None:  # it finished in between: queue a fresh one
            return await submit(session, kind=kind, target=target, owner=owner)
        return live


SCHEDULE_NAMESPACE = uuid.UUID("6f1d2c3e-8a4b-4f5e-9d7c-2b1a0e9f8c7d")


async def schedule_once(
    session: AsyncSession, *, kind: str, target: str, period: int
) -> TaskRow | None:
    """The task of one period of a schedule, queued by whichever node gets there first: its
    id is derived from (kind, target, period), so every other node's attempt — even after
    the task has finished — collides with it. None when it already exists."""
    task_id = uuid.uuid5(SCHEDULE_NAMESPACE, f"{kind}:{target}:{period}")
    try:
        async with session.begin_nested():
            row = TaskRow(id=task_id, kind=kind, target=target, owner=SCHEDULER)
            await TaskRepository(session).add(row)
            return row
    except IntegrityError:
        return None  # scheduled already, or a live task of this kind and target is running


class TaskService:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._tasks = TaskRepository(session)

    async def get(self, principal: Principal, task_id: uuid.UUID) -> TaskRow:
        row = await self._tasks.get(task_id)
        if row is None or not (principal.is_admin or row.owner == owner_of(principal)):
            raise TaskNotFound(f"task {task_id} not found")
        return row

    async def mine(self, principal: Principal, *, limit: int) -> list[TaskRow]:
        return list(await self._tasks.for_owner(owner_of(principal), limit=limit))

    async def cancel(self, principal: Principal, task_id: uuid.UUID) -> TaskRow:
        """A queued task is cancelled at once; a running one at its node's next renewal."""
        row = await self.get(principal, task_id)
        if TaskState(row.state).final:
            return row
        row.cancel_requested = True
        if row.state == TaskState.QUEUED.value:
            row.state = TaskState.CANCELLED.value
            row.finished_at = datetime.now(UTC)
        await self._session.flush()
        return row
