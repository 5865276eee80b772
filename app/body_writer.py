"""Request bodies to staging files: the network fills one fixed buffer while a worker thread
writes the other, so receiving and writing overlap, nothing blocks the event loop and memory
stays at two buffers per transfer whatever the size."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from drivers.fsops import StagedFile

BUFFER_BYTES = 2 * 1024 * 1024


async def write_body(
    staged: StagedFile,
    body: AsyncIterator[bytes],
    *,
    room: int | None = None,
    too_large: Callable[[], Exception] | None = None,
    hasher: Any = None,
    before_write: Callable[[], None] | None = None,
) -> int:
    """Append ``body`` to ``staged``; returns the bytes written. More than ``room`` bytes
    raises ``too_large()``; ``hasher`` (hashlib-like) sees every byte; ``before_write`` may
    veto each write by raising. Not synced."""
    written = 0
    free_send, free_receive = anyio.create_memory_object_stream[bytearray](2)
    full_send, full_receive = anyio.create_memory_object_stream[tuple[bytearray, int]](2)
    for _ in range(2):
        free_send.send_nowait(bytearray(BUFFER_BYTES))

    async def write_all() -> None:
        async with full_receive:
            async for block, used in full_receive:
                if before_write is not None:
                    before_write()
                await anyio.to_thread.run_sync(staged.write, memoryview(block)[:used])
                await free_send.send(block)

    async def receive_all() -> None:
        nonlocal written
        async with full_send:
            block, used = await free_receive.receive(), 0
            async for chunk in body:
                written += len(chunk)
                if room is not None and written > room:
                    raise too_large() if too_large else ValueError("body too large")
                if hasher is not None:
                    hasher.update(chunk)
                view = memoryview(chunk)
                while view:
                    take = min(len(view), BUFFER_BYTES - used)
                    block[used : used + take] = view[:take]
                    used += take
                    view = view[take:]
                    if used == BUFFER_BYTES:
                        await full_send.send((block, used))
                        block, used = await free_receive.receive(), 0
            if used:
                await full_send.send((block, used))

    try:
        async with anyio.create_task_group() as transfer:
            transfer.start_soon(write_all)
            await receive_all()
    except BaseExceptionGroup as group:
        # One side failed (the body, or the disk); the other was cancelled.
        raise group.exceptions[0] from None
    finally:
        free_send.close()
        free_receive.close()
    return written
