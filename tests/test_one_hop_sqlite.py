"""The embedded database's connection: one trip to its thread per statement (a transaction's
BEGIN included in its first), with everything SQLAlchemy reads of a cursor (rows, row counts,
inserted ids, errors) still right."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import create_engine
from app.db.one_hop_sqlite import OneHopConnection


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hops.sqlite3'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every function sent to a connection's thread."""
    sent: list[str] = []
    real = OneHopConnection._execute

    async def counted(self: OneHopConnection, function: Callable[[], Any]) -> Any:
        sent.append(getattr(function, "__name__", repr(function)))
        return await real(self, function)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(OneHopConnection, "_execute", counted)
    return sent


async def test_a_statement_is_one_trip_and_a_commit_another(
    engine: AsyncEngine, trips: list[str]
) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("SELECT 1"))  # the connection is checked out and warm
        trips.clear()
        inserted = await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
        assert inserted.lastrowid == 1
        assert len(trips) == 1
    # The insert, then the commit; the pool's reset after a commit costs no trip.
    assert len(trips) == 2


async def test_rows_counts_and_many_parameters_come_back(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        many = await conn.execute(
            text("INSERT INTO t (name) VALUES (:name)"), [{"name": n} for n in "bcd"]
        )
        assert many.rowcount == 3
        updated = await conn.execute(text("UPDATE t SET name = name || '!' WHERE name < 'd'"))
        assert updated.rowcount == 2
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT name FROM t ORDER BY id"))).all()
        assert [row.name for row in rows] == ["b!", "c!", "d"]
        first = (await conn.execute(text("SELECT name FROM t ORDER BY id"))).first()
        assert first is not None and first.name == "b!"
        assert (await conn.execute(text("SELECT name FROM t WHERE id = 99"))).first() is None


async def test_a_failed_statement_raises_and_its_transaction_rolls_back(
    engine: AsyncEngine, trips: list[str]
) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (name) VALUES ('x')"))
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (name) VALUES ('y')"))
            await conn.execute(text("INSERT INTO t (name) VALUES ('x')"))
    assert "rollback" in trips  # a transaction was open: it was undone in the thread
    async with engine.connect() as conn:
        names = (await conn.execute(text("SELECT name FROM t"))).scalars().all()
    assert names == ["x"]


def _write_lock_is_free(database: Path) -> bool:
    other = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return False
    other.execute("ROLLBACK")
    other.close()
    return True


async def test_begin_rides_with_the_first_statement_and_takes_the_write_lock(
    engine: AsyncEngine, trips: list[str], tmp_path: Path
) -> None:
    database = tmp_path / "hops.sqlite3"
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))  # checked out and warm
    trips.clear()
    async with engine.begin() as conn:
        assert trips == []  # nothing sent yet: the lock is not taken for nothing
        assert _write_lock_is_free(database)
        await conn.execute(text("SELECT count(*) FROM t"))
        assert len(trips) == 1  # BEGIN IMMEDIATE and the read, together
        assert not _write_lock_is_free(database)  # a read in a write transaction holds it
    assert _write_lock_is_free(database)
    assert len(trips) == 2  # and the commit


async def test_a_transaction_without_statements_costs_no_trip(
    engine: AsyncEngine, trips: list[str]
) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    trips.clear()
    async with engine.begin():
        pass
    with pytest.raises(RuntimeError):
        async with engine.begin():
            raise RuntimeError("nothing was sent to undo")
    assert trips == []


async def test_a_begin_that_cannot_get_the_lock_fails_at_the_first_statement(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("PRAGMA busy_timeout=50"))  # the pool's one connection
    holder = sqlite3.connect(tmp_path / "hops.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="locked"):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (name) VALUES ('blocked')"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    async with engine.begin() as conn:  # the connection is fine, and nothing half-done
        await conn.execute(text("INSERT INTO t (name) VALUES ('after')"))
    async with engine.connect() as conn:
        names = (await conn.execute(text("SELECT name FROM t"))).scalars().all()
    assert names == ["after"]
