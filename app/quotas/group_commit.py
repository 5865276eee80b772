"""Group commit: changes of one vfolder that arrive together share one transaction.

Under load, a small write's transaction (the vfolder's row lock, the quota check, the usage
update, the commit) cost more than its file work, and every write into a vfolder waits for
the transaction before it: the row lock serialises them, and on SQLite so does the one
writer. Changes that carry no reservation of their own (a small PUT, a mkdir) queue per
vfolder instead. The first one starts a batch, which takes every change queued by then;
changes arriving meanwhile make the next batch. A change alone is a batch of one.

A batch is run by ``QuotaLedger`` (``commit_batch``); this module only queues and hands out
outcomes. Each change runs its own steps in its own context (the request's log fields), and
its writer is told the outcome once the batch has committed: a failure of the commit fails
every change of the batch that had not already failed."""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import anyio

from app.errors import ServiceNotReady
from drivers.types import Usage

T = TypeVar("T")

# A batch's transaction holds the vfolder's row lock while it makes every change on disk:
# this many at most, so that the ones queued behind it do not wait for a long tail.
MAX_BATCH = 64


class BatchedChange(Protocol):
    """One change of a vfolder's content, made under its row lock within a batch."""

    async def foresee(self) -> Usage:
        """What the change will do to the usage, as the disk says before it is made."""
        ...

    async def make(self) -> Usage:
        """Make the change on disk; what it really changed (a write through a mount since
        ``foresee`` makes it differ)."""
        ...


class QueuedChange:
    """A change in a batch, and the way its writer learns what became of it."""

    def __init__(self, change: BatchedChange) -> None:
        self.change = change
        self._context = contextvars.copy_context()
        self._outcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.taken = False
        self.withdrawn = False

    async def run(self, step: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """``step`` of the change, in its writer's context."""
        return await asyncio.create_task(step(), context=self._context)

    @property
    def open(self) -> bool:
        return not self._outcome.done()

    def succeed(self) -> None:
        if self.open:
            self._outcome.set_result(None)

    def fail(self, error: BaseException) -> None:
        if self.open:
            self._outcome.set_exception(error)

    async def outcome(self) -> None:
        """Waits for the outcome. A writer cancelled before its change was taken withdraws
        it; one cancelled after waits for the outcome first: its change happened, or not,
        whatever the writer does next."""
        try:
            await asyncio.shield(self._outcome)
        except asyncio.CancelledError:
            if not self.taken:
                self.withdrawn = True
                raise
            with anyio.CancelScope(shield=True):
                await asyncio.wait([self._outcome])
            self._outcome.exception()  # seen: the cancellation is what the writer gets
            raise


# The name of the task running a vfolder's batches starts with this (what a trace of a
# request's statements looks for).
BATCH_TASK_PREFIX = "group-commit:"

CommitBatch = Callable[[uuid.UUID, list[QueuedChange]], Awaitable[None]]


class ChangeQueue:
    """Changes waiting for their vfolder's next batch, and the task draining each queue."""

    def __init__(self, commit_batch: CommitBatch) -> None:
        self._commit_batch = commit_batch
        self._queued: dict[uuid.UUID, list[QueuedChange]] = {}
        self._draining: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def submit(self, vfolder_id: uuid.UUID, change: BatchedChange) -> None:
        """Returns once ``change`` is made and committed; raises what stopped it."""
        queued = QueuedChange(change)
        self._queued.setdefault(vfolder_id, []).append(queued)
        if vfolder_id not in self._draining:
            # A context of its own: the batch's work is no one request's.
            self._draining[vfolder_id] = asyncio.create_task(
                self._drain(vfolder_id),
                name=f"{BATCH_TASK_PREFIX}{vfolder_id}",
                context=contextvars.Context(),
            )
        await queued.outcome()

    async def _drain(self, vfolder_id: uuid.UUID) -> None:
        try:
            while queue := self._queued.pop(vfolder_id, None):
                if len(queue) > MAX_BATCH:
                    self._queued[vfolder_id] = queue[MAX_BATCH:]
                    queue = queue[:MAX_BATCH]
                batch = [queued for queued in queue if not queued.withdrawn]
                for queued in batch:
                    queued.taken = True
                if batch:
                    await self._run(vfolder_id, batch)
        finally:
            del self._draining[vfolder_id]
            # Only when the drain itself is cancelled (the node shuts down): nobody will
            # take these.
            for queued in self._queued.pop(vfolder_id, []):
                queued.fail(ServiceNotReady("the node is shutting down; retry"))

    async def _run(self, vfolder_id: uuid.UUID, batch: list[QueuedChange]) -> None:
        try:
            await self._commit_batch(vfolder_id, batch)
        except BaseException as exc:
            for queued in batch:
                queued.fail(exc)
            if not isinstance(exc, Exception):
                raise
        # Every change has an outcome, whatever the batch did.
        for queued in batch:
            queued.fail(RuntimeError("the batch gave this change no outcome"))
