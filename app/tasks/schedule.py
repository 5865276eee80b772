"""Background work on a schedule, as tasks: every node's scheduler ticks, but each period of
each schedule becomes one task with an id derived from (kind, target, period), so the whole
cluster queues — and runs — it once. Finished scheduled tasks are pruned after a while."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.observability.logging import get_logger
from app.tasks.periodic import PeriodicJob
from app.tasks.repository import TaskRepository
from app.tasks.service import SCHEDULER, schedule_once, submit

log = get_logger(__name__)

KEEP_FINISHED = timedelta(hours=1)


@dataclass(frozen=True)
class Schedule:
    kind: str
    target: str
    interval_seconds: float
    # Not in the period the node starts in (a restart must not rescan every volume).
    skip_first: bool = False


class Scheduler(PeriodicJob):
    name = "scheduler"

    def __init__(
        self,
        schedules: list[Schedule],
        *,
        sessions: async_sessionmaker[AsyncSession],
        on_queued: Callable[[], None],
    ) -> None:
        super().__init__(interval_seconds=min(s.interval_seconds for s in schedules))
        self._schedules = schedules
        self._sessions = sessions
        self._on_queued = on_queued
        now = time.time()
        self._done = {s: int(now // s.interval_seconds) if s.skip_first else -1 for s in schedules}

    async def run_once(self) -> int:
        now = time.time()
        queued = 0
        async with self._sessions() as session, session.begin():
            for schedule in self._schedules:
                period = int(now // schedule.interval_seconds)
                if period <= self._done[schedule]:
                    continue
                self._done[schedule] = period
                task = await schedule_once(
                    session, kind=schedule.kind, target=schedule.target, period=period
                )
                queued += task is not None
            await TaskRepository(session).prune_finished(
                owner=SCHEDULER, before=datetime.now(UTC) - KEEP_FINISHED
            )
        if queued:
            self._on_queued()
        return queued

    async def now(self, kind: str, target: str) -> None:
        """Out of schedule, at once (once per cluster while one is live): after a delete, the
        trash is purged without waiting for the next period."""
        async with self._sessions() as session, session.begin():
            await submit(session, kind=kind, target=target, owner=SCHEDULER)
        self._on_queued()
