"""A job that runs in the background of one process: at start, then every interval. Only what
each node does for itself runs so (its liveness lease, its scheduler's tick); the cluster's
upkeep runs as leased tasks (``app.tasks.upkeep``)."""

from __future__ import annotations

import abc
import asyncio
import contextlib

from app.db.availability import log_pass_failure
from app.observability.logging import get_logger

log = get_logger(__name__)


class PeriodicJob(abc.ABC):
    name = "periodic-job"

    def __init__(self, *, interval_seconds: float) -> None:
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    @abc.abstractmethod
    async def run_once(self) -> int:
        """One pass; returns how many things it handled."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as error:
                log_pass_failure(log, self.name, error)
            await asyncio.sleep(self._interval)
