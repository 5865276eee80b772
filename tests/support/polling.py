from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio


async def wait_until(condition: Callable[[], bool], *, within_seconds: float = 10.0) -> None:
    """For effects that only the disk shows (a background purge): poll, with a deadline."""
    with anyio.fail_after(within_seconds):
        while not condition():  # noqa: ASYNC110 - nothing to await on but the filesystem
            await anyio.sleep(0.05)


def wait_until_blocking(condition: Callable[[], bool], *, within_seconds: float = 10.0) -> None:
    """``wait_until`` for synchronous tests (a real server polled over HTTP)."""
    deadline = time.monotonic() + within_seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {within_seconds} s"
        time.sleep(0.05)


async def eventually(check: Callable[[], Awaitable[bool]], *, within_seconds: float = 10.0) -> None:
    """``wait_until`` for a condition only a request can tell (what the API answers)."""
    with anyio.fail_after(within_seconds):
        while not await check():  # noqa: ASYNC110 - only a request tells
            await anyio.sleep(0.05)
