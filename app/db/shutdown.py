"""Disposing of the engine so that the process can always exit.

SQLAlchemy closes a connection invalidated by a cancellation (a task interrupted at shutdown
in the middle of a statement) in a shielded task of its own, then stops the connection's
worker thread. With aiosqlite ≥ 0.22 that task asks the thread, already gone, to stop once
more, and waits for an answer that never comes: the event loop's close then waits for it
forever, and the process never exits. Such a task has nothing left to do but wait, so it is
cancelled once the engine is disposed."""

from __future__ import annotations

import asyncio

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from app.observability.logging import get_logger

log = get_logger(__name__)

STRANDED_CLOSE = "_terminate_graceful_close"
STRANDED_WAIT_SECONDS = 0.5


async def dispose_engine(engine: AsyncEngine) -> None:
    await engine.dispose()
    stranded = [
        task
        for task in asyncio.all_tasks()
        if not task.done() and task.get_coro().__qualname__.endswith(STRANDED_CLOSE)  # type: ignore[union-attr]
    ]
    if not stranded:
        return
    with anyio.move_on_after(STRANDED_WAIT_SECONDS):
        await asyncio.wait(stranded)  # a close that is only slow gets its chance first
    for task in stranded:
        if not task.done():
            task.cancel()
    log.info("database connections closed at shutdown", extra={"stranded": len(stranded)})
