"""Runs tasks on this node: claims one with a lease, renews the lease while the handler works,
records progress, and writes the outcome. A node that dies simply stops renewing; another
node claims the task once the lease has run out and runs its handler again, which must
therefore be idempotent (resume or restart)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.availability import is_database_outage, log_pass_failure
from app.errors import DependencyUnavailable, DomainError, driver_problem
from app.observability.logging import get_logger
from app.tasks.models import TaskRow, TaskState
from app.tasks.repository import TaskRepository
from drivers.errors import DriverError

log = get_logger(__name__)

PROGRESS_EVERY_SECONDS = 0.2
# How long a stopping node lets the handler at work finish before interrupting it.
STOP_GRACE_SECONDS = 5.0


def node_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class TaskContext:
    """What a handler sees of its task."""

    def __init__(self, runner: TaskRunner, row: TaskRow) -> None:
        self._runner = runner
        self.id = row.id
        self.kind = row.kind
        self.target = row.target
        self.attempt = row.attempts
        # Set when another node took the task over: whatever stops the handler then, the
        # work belongs to that node now and must not be cleaned up here.
        self.lease_lost = False
        # Set when the task's owner asked to cancel it (as opposed to this node stopping,
        # after which another node carries on): its partial work should be undone.
        self.cancel_requested = False
        self._reported_at = 0.0

    async def report(self, current: int, total: int | None, unit: str) -> None:
        """Progress, written at most every 0.2 s (and always when complete)."""
        now = time.monotonic()
        if now - self._reported_at < PROGRESS_EVERY_SECONDS and current != total:
            return
        self._reported_at = now
        try:
            await self._runner.record_progress(self.id, current, total, unit)
        except LeaseLost:
            self.lease_lost = True
            raise


TaskHandler = Callable[[TaskContext], Awaitable[BaseModel]]


class LeaseLost(Exception):
    pass


class TaskRunner:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        handlers: Mapping[str, TaskHandler],
        *,
        node: str | None = None,
        lease_seconds: float = 30.0,
        poll_seconds: float = 2.0,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._handlers = dict(handlers)
        self.node = node or node_name()
        self.lease_seconds = lease_seconds
        self._poll = poll_seconds
        self._stop_grace = stop_grace_seconds
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stop_requested = False
        self._in_handler = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._stop_requested = False
        self._loop_task = asyncio.create_task(self._loop(), name="task-runner")

    async def stop(self) -> None:
        """Claims nothing more, lets the handler at work finish within a grace period, then
        interrupts it (its task goes back to the queue), and ends the loop.

        The loop's own database work (claim, hand-back, recording the end) is never
        cancelled: a stop landing inside a claim's commit would leave the task leased to a
        node that is gone (anyio's shields do not hold off ``Task.cancel()``). Nor is a
        handler cancelled while a short one would finish: a transaction cancelled midway
        can keep SQLite's write lock until its connection is collected."""
        if self._loop_task is None:
            return
        self._stop_requested = True
        self._wakeup.set()
        await asyncio.wait({self._loop_task}, timeout=self._stop_grace)
        if not self._loop_task.done() and self._in_handler:
            # One native cancellation: an anyio scope would re-deliver it until the scope
            # exits, and that can strand aiosqlite's connection close for good.
            self._loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._loop_task
        self._loop_task = None

    def wake(self) -> None:
        self._wakeup.set()

    async def _loop(self) -> None:
        while not self._stop_requested:
            try:
                await self.run_pending()
            except Exception as error:
                log_pass_failure(log, "task runner", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll)
            self._wakeup.clear()

    async def run_pending(self) -> int:
        """Claims and runs tasks one after another until none is claimable (or the runner
        is stopping)."""
        ran = 0
        while not self._stop_requested:
            row = await self.claim()
            if row is None:
                break
            if self._stop_requested:  # the stop came during the claim
                await self._hand_back(row)
                break
            await self._run(row)
            ran += 1
        return ran

    # -- one task --------------------------------------------------------------------------

    async def claim(self) -> TaskRow | None:
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            return await TaskRepository(session).claim(
                node=self.node,
                now=now,
                lease_until=now + timedelta(seconds=self.lease_seconds),
                kinds=sorted(self._handlers),
            )

    async def _run(self, row: TaskRow) -> None:
        try:
            await self._run_leased(row)
        except anyio.get_cancelled_exc_class():
            # This node is stopping: the task goes back to the queue for any node, rather
            # than wait for its lease to run out.
            with anyio.CancelScope(shield=True):
                await self._hand_back(row)
            raise

    async def _hand_back(self, row: TaskRow) -> None:
        async with self._sessions() as session, session.begin():
            await TaskRepository(session).hand_back(row.id, node=self.node)
        log.info("task handed back", extra={"task_id": str(row.id)})

    async def _run_leased(self, row: TaskRow) -> None:
        context = TaskContext(self, row)
        log.info(
            "task started",
            extra={"task_id": str(row.id), "kind": row.kind, "attempt": row.attempts},
        )
        cancelled = False
        result: BaseModel | None = None
        try:
            async with anyio.create_task_group() as group:

                async def keep_leased() -> None:
                    nonlocal cancelled
                    try:
                        cancelled = await self._keep_leased(row.id)
                    except LeaseLost:
                        context.lease_lost = True
                        raise
                    context.cancel_requested = True
                    group.cancel_scope.cancel()  # the handler stops where it is

                group.start_soon(keep_leased)
                self._in_handler = True
                try:
                    result = await self._handlers[row.kind](context)
                finally:
                    self._in_handler = False
                group.cancel_scope.cancel()
        except BaseExceptionGroup as group_error:
            error = group_error.exceptions[0]
            if isinstance(error, LeaseLost):
                log.warning("task lease lost to another node", extra={"task_id": str(row.id)})
                return
            outcome: tuple[TaskState, str | None, str | None] = (
                TaskState.FAILED,
                None,
                _problem_of(error),
            )
        else:
            if cancelled or result is None:
                outcome = (TaskState.CANCELLED, None, None)
            else:
                outcome = _success(result)
        try:
            await self._finish(row.id, *outcome)
        except Exception as error:
            # Not recorded (a result the database refuses…): the task fails, once. Left to
            # the pass, the error would leave it leased, to run again when the lease ran out.
            await self._finish(row.id, TaskState.FAILED, None, _problem_of(error))

    async def _finish(
        self, task_id: uuid.UUID, state: TaskState, result: str | None, problem: str | None
    ) -> None:
        async with self._sessions() as session, session.begin():
            finished = await TaskRepository(session).finish(
                task_id,
                node=self.node,
                state=state,
                now=datetime.now(UTC),
                result=result,
                problem=problem,
            )
        if finished:
            log.info("task finished", extra={"task_id": str(task_id), "state": state.value})

    async def _keep_leased(self, task_id: uuid.UUID) -> bool:
        """Renews until the task is cancelled (True); raises ``LeaseLost`` when another node
        took it over."""
        while True:
            await anyio.sleep(self.lease_seconds / 3)
            until = datetime.now(UTC) + timedelta(seconds=self.lease_seconds)
            async with self._sessions() as session, session.begin():
                row = await TaskRepository(session).renew(task_id, node=self.node, until=until)
            if row is None:
                raise LeaseLost(str(task_id))
            if row.cancel_requested:
                return True

    async def record_progress(
        self, task_id: uuid.UUID, current: int, total: int | None, unit: str
    ) -> None:
        async with self._sessions() as session, session.begin():
            held = await TaskRepository(session).progress(
                task_id, node=self.node, current=current, total=total, unit=unit
            )
        if not held:
            raise LeaseLost(str(task_id))


def _success(result: BaseModel) -> tuple[TaskState, str | None, str | None]:
    """A result that cannot be written as JSON (a name that is not UTF-8, a value of no JSON
    type) fails its task, like any other error of the handler."""
    try:
        return TaskState.SUCCEEDED, result.model_dump_json(), None
    except Exception as error:
        return TaskState.FAILED, None, _problem_of(error)


def _problem_of(exc: BaseException) -> str:
    body: dict[str, Any]
    if isinstance(exc, DomainError):
        body = {
            "type": exc.problem_type,
            "title": exc.title,
            "status": exc.status,
            "detail": exc.detail,
        }
    elif isinstance(exc, DriverError):
        problem_type, title, status = driver_problem(exc)
        body = {"type": problem_type, "title": title, "status": status, "detail": str(exc)}
    elif is_database_outage(exc):
        log.warning("task failed: the database is unavailable: %s", exc)
        unavailable = DependencyUnavailable("the database was unavailable; run the task again")
        body = {
            "type": unavailable.problem_type,
            "title": unavailable.title,
            "status": unavailable.status,
            "detail": unavailable.detail,
        }
    else:
        log.error("task failed unexpectedly", exc_info=exc)
        body = {
            "type": "/problems/internal",
            "title": "Internal error",
            "status": 500,
            "detail": "the task failed unexpectedly; the logs have the details",
        }
    return json.dumps(body)
