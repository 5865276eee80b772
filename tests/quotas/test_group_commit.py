"""Group commit: small writes and mkdirs into one vfolder that arrive together share one
transaction, and each keeps its own outcome: admitted in arrival order while they fit,
refused one by one when they do not, failing alone when the disk refuses them. The ledger
stays equal to the disk, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from app.quotas.group_commit import MAX_BATCH, ChangeQueue, QueuedChange
from drivers.types import Usage
from tests.files.conftest import ALICE, VFolderHandle
from tests.quotas.test_ledger_property import ledger, scan
from tests.quotas.test_quotas import set_quota

WRITERS = 30
EACH = 1000


async def put(vf: VFolderHandle, path: str, data: bytes, *, replace: bool = True) -> int:
    headers = ALICE if replace else {**ALICE, "If-None-Match": "*"}
    response = await vf.client.put(vf.url(f"files/{path}"), content=data, headers=headers)
    assert response.status_code < 500, response.text
    return response.status_code


async def test_writers_at_once_are_admitted_while_they_fit_and_refused_after(
    vfolder: VFolderHandle,
) -> None:
    assert (
        await set_quota(vfolder.client, "vfolder", vfolder.id, limit_bytes=10 * EACH + 500)
    ).is_success
    statuses = await asyncio.gather(
        *(put(vfolder, f"f{n}.bin", b"x" * EACH) for n in range(WRITERS))
    )
    assert sorted(statuses) == [201] * 10 + [413] * (WRITERS - 10)
    used, files, reserved = await ledger(vfolder)
    assert (used, files) == scan(vfolder.root) == (10 * EACH, 10)
    assert reserved == 0


async def test_writers_of_one_path_at_once_conflict_and_only_one_lands(
    vfolder: VFolderHandle,
) -> None:
    sizes = [100 + n for n in range(WRITERS)]
    statuses = await asyncio.gather(
        *(put(vfolder, "same.bin", b"y" * size, replace=False) for size in sizes)
    )
    assert sorted(statuses) == [201] + [412] * (WRITERS - 1)
    landed = (vfolder.root / "same.bin").stat().st_size
    assert landed in sizes
    used, files, _ = await ledger(vfolder)
    assert (used, files) == scan(vfolder.root) == (landed, 1)


async def test_replacing_writers_of_one_path_leave_the_ledger_exact(
    vfolder: VFolderHandle,
) -> None:
    assert await put(vfolder, "same.bin", b"z" * 5000) == 201
    statuses = await asyncio.gather(
        *(put(vfolder, "same.bin", b"z" * (10 * n)) for n in range(WRITERS))
    )
    assert set(statuses) == {200}
    used, files, _ = await ledger(vfolder)
    assert (used, files) == scan(vfolder.root)


async def test_mkdirs_at_once_of_shared_parents_count_each_entry_once(
    vfolder: VFolderHandle,
) -> None:
    paths = [f"p{n % 3}/q{n % 5}/r{n}" for n in range(WRITERS)]
    responses = await asyncio.gather(
        *(
            vfolder.client.post(
                vfolder.url("mkdir"), json={"path": path, "parents": True}, headers=ALICE
            )
            for path in paths
        )
    )
    assert {response.status_code for response in responses} == {200}
    used, files, _ = await ledger(vfolder)
    assert (used, files) == scan(vfolder.root)
    assert files == 3 + 15 + WRITERS


async def test_an_entry_limit_admits_mkdirs_in_arrival_order_until_full(
    vfolder: VFolderHandle,
) -> None:
    assert (await set_quota(vfolder.client, "vfolder", vfolder.id, limit_files=7)).is_success
    responses = await asyncio.gather(
        *(
            vfolder.client.post(vfolder.url("mkdir"), json={"path": f"d{n}"}, headers=ALICE)
            for n in range(WRITERS)
        )
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 7 + [413] * (WRITERS - 7)
    assert (await ledger(vfolder))[:2] == scan(vfolder.root) == (0, 7)


# -- the queue itself ------------------------------------------------------------------------


class Change:
    """A change that records when it is made."""

    def __init__(self, name: str, log: list[str], *, fail: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail = fail

    async def foresee(self) -> Usage:
        return Usage(1, 1)

    async def make(self) -> Usage:
        if self.fail:
            raise OSError(f"{self.name} refused by the disk")
        self.log.append(self.name)
        return Usage(1, 1)


class Recorder:
    """Runs each batch as the ledger does (every change made, in order), noting its size; it
    can hold a batch open until released."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.release = asyncio.Event()
        self.release.set()
        self.entered = asyncio.Event()

    async def __call__(self, _vfolder_id: uuid.UUID, batch: list[QueuedChange]) -> None:
        self.sizes.append(len(batch))
        self.entered.set()
        await self.release.wait()
        for queued in batch:
            try:
                await queued.run(queued.change.make)
            except OSError as exc:
                queued.fail(exc)
            else:
                queued.succeed()


async def first_batch_held(
    made: list[str],
) -> tuple[ChangeQueue, Recorder, asyncio.Task[None], uuid.UUID]:
    """A queue whose first batch, of the change "first", runs and is held open."""
    recorder = Recorder()
    queue = ChangeQueue(recorder)
    vfolder_id = uuid.uuid4()
    recorder.release.clear()
    first = asyncio.create_task(queue.submit(vfolder_id, Change("first", made)))
    await recorder.entered.wait()
    return queue, recorder, first, vfolder_id


async def test_changes_arriving_during_a_batch_make_the_next_batch_together() -> None:
    made = list[str]()
    queue, recorder, first, vfolder_id = await first_batch_held(made)
    rest = [asyncio.create_task(queue.submit(vfolder_id, Change(f"c{n}", made))) for n in range(10)]
    await asyncio.sleep(0)
    recorder.release.set()
    await asyncio.gather(first, *rest)
    assert recorder.sizes == [1, 10]
    assert made == ["first"] + [f"c{n}" for n in range(10)]


async def test_a_batch_takes_at_most_max_batch_changes() -> None:
    recorder, made = Recorder(), list[str]()
    queue = ChangeQueue(recorder)
    vfolder_id = uuid.uuid4()
    await asyncio.gather(
        *(queue.submit(vfolder_id, Change(str(n), made)) for n in range(MAX_BATCH + 5))
    )
    assert recorder.sizes == [MAX_BATCH, 5]
    assert made == [str(n) for n in range(MAX_BATCH + 5)]


async def test_each_change_has_its_own_outcome() -> None:
    recorder, made = Recorder(), list[str]()
    queue = ChangeQueue(recorder)
    vfolder_id = uuid.uuid4()
    outcomes = await asyncio.gather(
        queue.submit(vfolder_id, Change("good", made)),
        queue.submit(vfolder_id, Change("bad", made, fail=True)),
        queue.submit(vfolder_id, Change("also good", made)),
        return_exceptions=True,
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], OSError)
    assert made == ["good", "also good"]


async def test_a_failed_batch_fails_every_change_in_it() -> None:
    async def broken(_vfolder_id: uuid.UUID, _batch: list[QueuedChange]) -> None:
        raise ConnectionError("the database went away")

    queue = ChangeQueue(broken)
    vfolder_id = uuid.uuid4()
    outcomes = await asyncio.gather(
        *(queue.submit(vfolder_id, Change(str(n), [])) for n in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    # The queue goes on: the next change starts a batch of its own.
    recorder = Recorder()
    queue._commit_batch = recorder  # the same queue, now with a database
    await queue.submit(vfolder_id, Change("after", []))
    assert recorder.sizes == [1]


async def test_a_writer_cancelled_while_queued_withdraws_its_change() -> None:
    made = list[str]()
    queue, recorder, first, vfolder_id = await first_batch_held(made)
    queued = asyncio.create_task(queue.submit(vfolder_id, Change("withdrawn", made)))
    await asyncio.sleep(0)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    recorder.release.set()
    await first
    assert made == ["first"]


async def test_a_writer_cancelled_while_its_change_is_made_waits_for_it() -> None:
    recorder, made = Recorder(), list[str]()
    queue = ChangeQueue(recorder)
    recorder.release.clear()
    writer = asyncio.create_task(queue.submit(uuid.uuid4(), Change("taken", made)))
    await recorder.entered.wait()
    writer.cancel()
    await asyncio.sleep(0.05)
    assert not writer.done()  # still waiting for its change, already taken
    recorder.release.set()
    with pytest.raises(asyncio.CancelledError):
        await writer
    assert made == ["taken"]
