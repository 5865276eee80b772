"""Tasks: persisted, leased, taken over when their node dies, cancellable, followed live."""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db.engine import create_engine, create_session_factory
from app.tasks.models import TaskRow, TaskState
from app.tasks.runner import TaskContext, TaskRunner
from app.tasks.service import submit
from tests.support.app import SERVICE, bearer, user_token

COUNTED = "test-count"  # a task kind of these tests: counts to its target, slowly


class Counted(BaseModel):
    counted: int
    attempt: int


async def count(task: TaskContext) -> Counted:
    total = int(task.target)
    for done in range(1, total + 1):
        await anyio.sleep(0.01)
        await task.report(done, total, "items")
    return Counted(counted=total, attempt=task.attempt)


async def wait_forever(task: TaskContext) -> Counted:
    await task.report(1, None, "items")
    await anyio.sleep(3600)
    raise AssertionError("never cancelled")


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings.effective_database_url)
    yield create_session_factory(engine)
    await engine.dispose()


async def _queued(sessions: async_sessionmaker[AsyncSession], kind: str, target: str) -> TaskRow:
    async with sessions() as session, session.begin():
        return await submit(session, kind=kind, target=target, owner="service:test")


async def _state(sessions: async_sessionmaker[AsyncSession], task_id: uuid.UUID) -> TaskRow:
    async with sessions() as session:
        row = await session.get(TaskRow, task_id)
        assert row is not None
        return row


async def test_a_task_whose_node_died_is_taken_over_after_its_lease(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    task = await _queued(sessions, COUNTED, "5")
    dead = TaskRunner(sessions, {COUNTED: count}, node="node-a", lease_seconds=0.5)
    claimed = await dead.claim()  # node A claims it, then dies without a word
    assert claimed is not None and claimed.id == task.id
    survivor = TaskRunner(sessions, {COUNTED: count}, node="node-b", lease_seconds=0.5)
    assert await survivor.run_pending() == 0  # A's lease still holds
    await anyio.sleep(0.6)
    assert await survivor.run_pending() == 1
    done = await _state(sessions, task.id)
    assert (done.state, done.node, done.attempts) == ("succeeded", "node-b", 2)
    assert json.loads(done.result or "") == {"counted": 5, "attempt": 2}
    assert (done.progress_current, done.progress_total) == (5, 5)


async def test_a_node_that_lost_its_task_cannot_report_over_its_successor(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    task = await _queued(sessions, COUNTED, "3")
    stale = TaskRunner(sessions, {COUNTED: count}, node="node-a", lease_seconds=0.3)
    assert await stale.claim() is not None
    await anyio.sleep(0.4)
    successor = TaskRunner(sessions, {COUNTED: count}, node="node-b", lease_seconds=30)
    assert await successor.claim() is not None
    with pytest.raises(Exception, match=str(task.id)):
        await stale.record_progress(task.id, 2, 3, "items")
    assert (await _state(sessions, task.id)).node == "node-b"


async def test_one_live_task_per_kind_and_target(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = await _queued(sessions, COUNTED, "7")
    again = await _queued(sessions, COUNTED, "7")  # another node's schedule, the same moment
    assert again.id == first.id
    await TaskRunner(sessions, {COUNTED: count}, node="n").run_pending()
    later = await _queued(sessions, COUNTED, "7")  # the first one is over: a new one
    assert later.id != first.id


async def test_a_running_task_is_cancelled_at_its_next_renewal(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    task = await _queued(sessions, "test-wait", "x")
    runner = TaskRunner(sessions, {"test-wait": wait_forever}, node="n", lease_seconds=0.3)
    async with anyio.create_task_group() as group:
        group.start_soon(runner.run_pending)
        await anyio.sleep(0.2)
        async with sessions() as session, session.begin():
            row = await session.get(TaskRow, task.id)
            assert row is not None and row.state == "running"
            row.cancel_requested = True
    assert (await _state(sessions, task.id)).state == TaskState.CANCELLED.value


async def test_a_stopping_node_never_leaves_a_task_leased(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Stops land anywhere: before the claim, inside its commit, mid-handler, while the end is
    # recorded. Whichever, the task ends up finished or queued again for any node — never
    # running under a node that is gone (it would wait out a 30 s lease).
    async def query_away(task: TaskContext) -> Counted:
        for _ in range(int(task.target)):
            async with sessions() as session:
                await session.execute(select(TaskRow.id).limit(1))
        return Counted(counted=int(task.target), attempt=task.attempt)

    stop_after = random.Random(11)
    for attempt in range(40):
        task = await _queued(sessions, COUNTED, f"{10 + attempt % 3 * 10}")
        runner = TaskRunner(
            sessions, {COUNTED: query_away}, node=f"stopping-{attempt}", poll_seconds=0
        )
        runner.start()
        await anyio.sleep(stop_after.uniform(0, 0.03))
        await runner.stop()
        row = await _state(sessions, task.id)
        assert row.state in ("queued", "succeeded"), (attempt, row.state, row.node)
        async with sessions() as session, session.begin():
            await session.execute(delete(TaskRow).where(TaskRow.id == task.id))
    # Nor does a stop strand the database driver's clean-up (an aiosqlite close left pending
    # forever hangs the event loop's shutdown).
    await anyio.sleep(0.2)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_a_handler_at_work_past_the_grace_is_interrupted_and_its_task_handed_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    started = anyio.Event()

    async def work_on(task: TaskContext) -> Counted:
        started.set()
        return await wait_forever(task)

    task = await _queued(sessions, "test-wait", "x")
    runner = TaskRunner(
        sessions, {"test-wait": work_on}, node="n", poll_seconds=0, stop_grace_seconds=0.3
    )
    runner.start()
    with anyio.fail_after(5):
        await started.wait()
        await runner.stop()
    row = await _state(sessions, task.id)
    assert (row.state, row.node, row.lease_expires_at) == ("queued", None, None)


class Named(BaseModel):
    name: str


async def test_a_result_that_cannot_be_recorded_fails_its_task_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # A handler reports a name as the disk gives it: not UTF-8, so its result has no JSON.
    # The task fails (once) with a problem; it is not left leased, to run again and again.
    runs = 0

    async def report_a_name(task: TaskContext) -> Named:
        nonlocal runs
        runs += 1
        return Named(name=os.fsdecode(b"caf\xe9.txt"))

    task = await _queued(sessions, "test-name", "x")
    runner = TaskRunner(
        sessions, {"test-name": report_a_name}, node="n", lease_seconds=0.3, poll_seconds=0.05
    )
    runner.start()
    try:
        with anyio.fail_after(5):
            # Polled: the task's end is seen in the database only.
            while (await _state(sessions, task.id)).state != "failed":  # noqa: ASYNC110
                await anyio.sleep(0.05)
        await anyio.sleep(0.6)  # the lease would have run out twice over
    finally:
        await runner.stop()
    row = await _state(sessions, task.id)
    assert (row.state, row.result, row.node, row.lease_expires_at) == ("failed", None, "n", None)
    assert json.loads(row.problem or "")["type"] == "/problems/internal"
    assert runs == 1


def _events(stream: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in stream.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_a_volume_reconcile_task_is_followed_live_to_its_end(
    client: httpx.AsyncClient,
) -> None:
    alice = bearer(user_token("alice"))
    for n in range(6):
        made = await client.post(
            "/v1/vfolders", json={"name": f"t{n}", "volume": "local"}, headers=alice
        )
        assert made.status_code == 201
    submitted = await client.post("/v1/volumes/local/reconcile", headers=SERVICE)
    assert submitted.status_code == 202, submitted.text
    location = submitted.headers["location"]
    stream = await client.get(f"{location}/events", headers=SERVICE)
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = _events(stream.text)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "end" and set(kinds[:-1]) == {"progress"}
    progress = [data["progress"]["current"] for kind, data in events if kind == "progress"]
    assert progress == sorted(progress)
    assert events[-1][1]["state"] == "succeeded"
    task = (await client.get(location, headers=SERVICE)).json()
    assert task["result"]["vfolders_scanned"] == 6
    mine = (await client.get("/v1/tasks", headers=SERVICE)).json()["items"]
    assert task["id"] in [t["id"] for t in mine]
    assert (await client.get(location, headers=alice)).status_code == 404  # not hers
