"""Request bodies to staging files: the network fills one batch of chunks while a worker thread
writes the previous one with one ``writev``, so receiving and writing overlap, nothing
blocks the event loop, the chunks the server received are written without being copied again,
and memory stays at a few batches per transfer whatever the size. The batches of all the
bodies being written at once share one budget, so that 64 concurrent uploads do not hold
64 x 3 MiB: each batch shrinks as writers join (down to a floor that keeps writes large)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio

from app.errors import InvalidRequest
from drivers.base import Staged

BATCH_BYTES = 1024 * 1024
MIN_BATCH_BYTES = 128 * 1024
# What the batches of every body being written may hold between them (three each at most).
BATCHES_BUDGET_BYTES = 48 * 1024 * 1024

_writers = 0  # bodies being written by this process now


def batch_bytes(writers: int) -> int:
    """The batch size of each of ``writers`` bodies written at once."""
    share = BATCHES_BUDGET_BYTES // (3 * max(1, writers))
    return max(MIN_BATCH_BYTES, min(BATCH_BYTES, share))


async def write_body(
    staged: Staged,
    body: AsyncIterator[bytes],
    *,
    room: int | None = None,
    too_large: Callable[[], Exception] | None = None,
    hasher: Any = None,
    before_write: Callable[[], None] | None = None,
    on_batch: Callable[[int], Awaitable[None]] | None = None,
    after_write: Callable[[], Awaitable[None]] | None = None,
    keep_received: bool = False,
) -> int:
    """Append ``body`` to ``staged``; returns the bytes written. More than ``room`` bytes
    raises ``too_large()``; ``hasher`` (hashlib-like) sees every byte; ``before_write`` may
    veto each write by raising; ``on_batch`` sees the running total before each batch is
    written (to reserve quota for it) and may refuse it by raising; ``after_write`` runs
    after each batch is written (``staged.size`` counts it). With ``keep_received``, a body
    that breaks (the client went away) still has what it delivered written before its error
    propagates. Not synced."""
    written = 0
    broken: Exception | None = None
    # One batch being written, one waiting, one being received: at most three in memory.
    batch_send, batch_receive = anyio.create_memory_object_stream[list[bytes]](1)

    async def write_all() -> None:
        async with batch_receive:
            async for batch in batch_receive:
                if before_write is not None:
                    before_write()
                await staged.write(batch)
                if after_write is not None:
                    await after_write()

    async def receive_all() -> None:
        nonlocal written, broken
        async with batch_send:
            batch: list[bytes] = []
            batched = 0
            chunks = aiter(body)
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    if not keep_received:
                        raise
                    broken = exc  # what arrived before is written below, then it is raised
                    break
                written += len(chunk)
                if room is not None and written > room:
                    raise too_large() if too_large else ValueError("body too large")
                if hasher is not None:
                    hasher.update(chunk)
                batch.append(chunk)
                batched += len(chunk)
                if batched >= batch_bytes(_writers):
                    if on_batch is not None:
                        await on_batch(written)
                    await batch_send.send(batch)
                    batch, batched = [], 0
            if batch:
                if on_batch is not None:
                    await on_batch(written)
                await batch_send.send(batch)

    global _writers
    _writers += 1
    try:
        async with anyio.create_task_group() as transfer:
            transfer.start_soon(write_all)
            await receive_all()
    except BaseExceptionGroup as group:
        # One side failed (the body, or the disk); the other was cancelled, or found the
        # stream between them broken by that failure, which is not the cause.
        causes = [e for e in group.exceptions if not isinstance(e, anyio.BrokenResourceError)]
        raise (causes or list(group.exceptions))[0] from None
    finally:
        _writers -= 1
    if broken is not None:
        raise broken
    return written


async def received_whole(body: AsyncIterator[bytes], *, limit: int) -> list[bytes]:
    """The chunks of a small body, all of them; one longer than ``limit`` (its declared
    length) is refused."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in body:
        size += len(chunk)
        if size > limit:
            raise InvalidRequest(f"the body is longer than its declared {limit} bytes")
        chunks.append(chunk)
    return chunks
