"""Asynchronous vendor jobs (ONTAP's ``/api/cluster/jobs``, …) polled to a real terminal
state: a job queued, paused or running is not done, and a job that outlives the deadline has
an unknown outcome, which is said as such."""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from drivers.errors import BackendApiError, BackendUnavailable

Job = TypeVar("Job")


class JobState(enum.Enum):
    PENDING = "pending"  # queued, paused, running: not done
    SUCCEEDED = "succeeded"
    FAILED = "failed"


async def wait_for_job(
    fetch: Callable[[], Awaitable[Job]],
    state_of: Callable[[Job], tuple[JobState, str | None]],
    *,
    what: str,
    timeout_seconds: float,
    interval_seconds: float = 0.5,
) -> Job:
    """The job once it succeeded; ``BackendApiError`` with the vendor's message when it
    failed; ``BackendUnavailable`` when it is still pending at the deadline."""
    deadline = time.monotonic() + timeout_seconds
    delay = min(interval_seconds, 0.05)
    while True:
        job = await fetch()
        state, message = state_of(job)
        if state is JobState.SUCCEEDED:
            return job
        if state is JobState.FAILED:
            raise BackendApiError(f"{what} failed: {message or 'no reason given'}")
        if time.monotonic() + delay > deadline:
            raise BackendUnavailable(
                f"{what} has not finished after {timeout_seconds:g} s; its outcome is unknown"
            )
        await anyio.sleep(delay)
        delay = min(delay * 2, interval_seconds)
