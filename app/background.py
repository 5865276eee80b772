"""A job that runs in the background of one process: at start, then every interval, and at
once when woken. (The tasks issue moves these onto leased, cluster-wide tasks.)"""

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
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @abc.abstractmethod
    async def run_once(self) -> int:
        """One pass; returns how many things it handled."""

    async def on_start(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Once, before the first pass (recovery work)."""

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        try:
            await self.on_start()
        except Exception as error:
            log_pass_failure(log, f"{self.name} (start-up)", error)
        while True:
            try:
                await self.run_once()
            except Exception as error:
                log_pass_failure(log, self.name, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._interval)
            self._wakeup.clear()
