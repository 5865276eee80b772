"""The write batches of request bodies share one memory budget: a body written alone goes in
1 MiB batches, many at once in smaller ones, never below the floor; every byte arrives."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import anyio
import anyio.lowlevel

from app.content.body_writer import (
    BATCH_BYTES,
    BATCHES_BUDGET_BYTES,
    MIN_BATCH_BYTES,
    batch_bytes,
    write_body,
)
from drivers.base import Staged
from drivers.registry import build_driver
from drivers.types import VFolderOwner

KIB = 1024


def test_a_batch_shrinks_as_writers_join_down_to_the_floor() -> None:
    assert batch_bytes(1) == BATCH_BYTES
    assert batch_bytes(64) == BATCHES_BUDGET_BYTES // (3 * 64) == 256 * KIB
    assert batch_bytes(10_000) == MIN_BATCH_BYTES
    sizes = [batch_bytes(n) for n in range(1, 200)]
    assert sizes == sorted(sizes, reverse=True)


class RecordedBatches:
    """A real staged file of a posix volume; the size of each batch written to it is kept."""

    def __init__(self, staged: Staged) -> None:
        self._staged = staged
        self.batches: list[int] = []

    @property
    def size(self) -> int:
        return self._staged.size

    async def write(self, chunks: list[bytes]) -> None:
        self.batches.append(sum(map(len, chunks)))
        await self._staged.write(chunks)

    async def sync(self) -> None:
        await self._staged.sync()

    async def truncate(self, length: int) -> None:
        await self._staged.truncate(length)

    async def try_lock(self) -> bool:
        return await self._staged.try_lock()

    async def close(self) -> None:
        await self._staged.close()

    async def discard(self) -> None:
        await self._staged.discard()


async def _body(chunks: int, chunk: bytes) -> AsyncIterator[bytes]:
    for _ in range(chunks):
        yield chunk
        await anyio.lowlevel.checkpoint()


async def test_sixty_four_bodies_at_once_write_smaller_batches_and_lose_nothing(
    tmp_path: Path,
) -> None:
    driver = build_driver("posix", root=tmp_path / "volume", options={})
    await driver.initialize()
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id, owner=VFolderOwner("user", "u"))
    chunk = b"x" * (64 * KIB)

    async def staged() -> RecordedBatches:
        return RecordedBatches(await driver.files.create_staged(vfolder_id))

    bodies = [await staged() for _ in range(64)]
    async with anyio.create_task_group() as writers:
        for target in bodies:
            writers.start_soon(partial(write_body, target, _body(16, chunk)))  # 1 MiB each
    for target in bodies:
        assert target.size == 1024 * KIB
        # A share of the budget (give or take the chunk that filled it), never a whole MiB.
        assert max(target.batches) <= batch_bytes(64) + len(chunk)
        await target.discard()
    alone = await staged()
    await write_body(alone, _body(32, chunk))
    assert alone.batches == [BATCH_BYTES, BATCH_BYTES]
    await alone.discard()
