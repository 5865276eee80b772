"""The SQL of the hot paths, counted. Each statement is a round trip to the database (on SQLite,
a trip to its connection's thread), and its ORM work costs more CPU than the file work beside
it: a change that adds one to a create, a small write or a mkdir shows here, not only in a
benchmark run. Transaction control (BEGIN, COMMIT) is not a statement here."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.quotas.group_commit import BATCH_TASK_PREFIX
from tests.files.conftest import ALICE
from tests.support.app import SERVICE


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL sent on behalf of this task (the in-process client runs the app in it), and by
    the group commit of its changes, while the block runs, BEGIN left out: not the node's
    background work meanwhile."""
    sent: list[str] = []
    caller = asyncio.current_task()

    def on_behalf(task: asyncio.Task[Any] | None) -> bool:
        return task is caller or (
            task is not None and task.get_name().startswith(BATCH_TASK_PREFIX)
        )

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if on_behalf(asyncio.current_task()) and not statement.startswith("BEGIN"):
            sent.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", record)


LOCK_LIMITS_USAGE = ["SELECT vfolders.id,", "SELECT quotas.scope_type,", "UPDATE vfolders"]


def verbs(sent: list[str]) -> list[str]:
    return [" ".join(statement.split()[:2]) for statement in sent]


async def test_create_write_mkdir_and_delete_stay_within_their_statements(
    client: httpx.AsyncClient,
) -> None:
    with statements() as sent:
        created = await client.post(
            "/v1/vfolders", json={"name": "budget", "volume": "local"}, headers=ALICE
        )
        assert created.status_code == 201
    # One query for the id and the live name, the insert.
    assert verbs(sent) == ["SELECT vfolders.id,", "INSERT INTO"], "\n".join(sent)
    base = f"/v1/vfolders/{created.json()['id']}"
    await client.put(f"{base}/files/warm.bin", content=b"w", headers=ALICE)

    with statements() as sent:
        put = await client.put(f"{base}/files/small.bin", content=b"x" * 65536, headers=ALICE)
        assert put.status_code == 201
    # The row lock, the limits, the usage: one transaction, no reservation before it.
    assert verbs(sent) == LOCK_LIMITS_USAGE, "\n".join(sent)

    with statements() as sent:
        made = await client.post(f"{base}/mkdir", json={"path": "d"}, headers=ALICE)
        assert made.status_code == 200
    assert verbs(sent) == LOCK_LIMITS_USAGE, "\n".join(sent)

    with statements() as sent:
        deleted = await client.delete(base, headers=SERVICE)
        assert deleted.status_code in (200, 202, 204)
    # A service key needs no grants read: the locked row, and its change.
    assert verbs(sent)[:2] == ["SELECT vfolders.id,", "UPDATE vfolders"], "\n".join(sent)
