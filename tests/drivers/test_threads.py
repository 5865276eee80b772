"""``run_blocking``: the thread hop of every file operation. What anyio's ``run_sync`` did
must still hold: results, errors and context variables come through, and a cancelled caller
never goes on while its call is still running."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from drivers.threads import MAX_THREADS, run_blocking

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


async def test_results_errors_and_context_come_through() -> None:
    assert await run_blocking(sum, [1, 2, 3]) == 6
    with pytest.raises(ZeroDivisionError):
        await run_blocking(divmod, 1, 0)
    request_id.set("r-42")
    assert await run_blocking(request_id.get) == "r-42"
    assert threading.current_thread() is not await run_blocking(threading.current_thread)


async def test_a_caller_cancelled_mid_call_waits_for_the_call_to_finish() -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def slow_write() -> None:
        started.set()
        release.wait(10)
        finished.append("written")

    task = asyncio.create_task(run_blocking(slow_write))
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    await asyncio.sleep(0.1)
    assert not task.done()  # still waiting for the write: nothing may act as if it had not run
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished == ["written"]


async def test_a_call_cancelled_before_a_thread_took_it_never_runs() -> None:
    release = threading.Event()
    busy = [asyncio.create_task(run_blocking(release.wait, 10)) for _ in range(MAX_THREADS)]
    ran: list[str] = []
    waiting = asyncio.create_task(run_blocking(ran.append, "ran"))
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    await asyncio.gather(*busy)
    await asyncio.sleep(0.05)
    assert ran == []


async def test_a_caller_cancelled_after_its_call_returned_is_never_left_waiting() -> None:
    """The call returns, and the caller is cancelled before the loop has handed it the
    result: the caller must still end."""
    returning = threading.Event()

    def quick() -> None:
        returning.set()

    task = asyncio.create_task(run_blocking(quick))
    await asyncio.sleep(0)  # the call is submitted
    # Blocks the loop on purpose: the result is queued to it before the cancellation is.
    assert returning.wait(10)
    time.sleep(0.05)  # noqa: ASYNC251 - the loop must not run meanwhile
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done, "the cancelled caller was left waiting"


async def test_more_calls_than_threads_all_complete_in_the_pool() -> None:
    results = await asyncio.gather(*(run_blocking(abs, -n) for n in range(MAX_THREADS * 5)))
    assert results == list(range(MAX_THREADS * 5))
    names = await asyncio.gather(
        *(run_blocking(lambda: threading.current_thread().name) for _ in range(MAX_THREADS))
    )
    assert all(name.startswith("storage-io-") for name in names)
