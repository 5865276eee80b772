"""aiosqlite's connection, with one thread hop per statement instead of four.

SQLAlchemy's aiosqlite adapter awaits ``cursor()``, ``execute()``, ``fetchall()`` and
``close()`` one by one, and each is a round trip to the connection's thread, waking the event
loop and resuming the whole request's stack of coroutines on the way back. A cursor here
runs the statement, reads every row and closes the sqlite3 cursor in one trip; the rest are
answered from what that trip brought back. The pool's rollback of a connection that holds no
transaction (every check-in after a commit) makes no trip at all. A transaction's
``BEGIN IMMEDIATE`` rides with its first statement (``begin_with_next_statement``), and one
that ran no statement commits or rolls back without a trip.

Rows are read whole, as SQLAlchemy's adapter already did for every non-streaming cursor: the
proxy streams no query results."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import aiosqlite

_Description = tuple[tuple[Any, ...], ...] | None


class OneHopCursor:
    """What SQLAlchemy's adapter asks of an aiosqlite cursor, one thread hop per execute."""

    arraysize = 1

    def __init__(self, connection: OneHopConnection) -> None:
        self._connection = connection
        self.description: _Description = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> OneHopCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> None:
        await self._run(lambda cursor: cursor.execute(sql, parameters))

    async def executemany(
        self, sql: str, parameters: Iterable[Sequence[Any] | dict[str, Any]]
    ) -> None:
        await self._run(lambda cursor: cursor.executemany(sql, parameters))

    async def _run(self, statement: Callable[[sqlite3.Cursor], object]) -> None:
        begin = self._connection.take_pending_begin()

        def in_thread() -> tuple[_Description, int, int | None, list[Any]]:
            if begin is not None:
                self._connection.raw.execute(begin)
            cursor = self._connection.raw.cursor()
            try:
                statement(cursor)
                rows = cursor.fetchall() if cursor.description else []
                return cursor.description, cursor.rowcount, cursor.lastrowid, rows
            finally:
                cursor.close()

        (
            self.description,
            self.rowcount,
            self.lastrowid,
            self._rows,
        ) = await self._connection.in_thread(in_thread)

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    async def fetchall(self) -> list[Any]:
        taken, self._rows = self._rows, []
        return taken

    async def close(self) -> None:
        self._rows = []

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    def setoutputsize(self, *_args: Any) -> None:
        return None


class OneHopConnection(aiosqlite.Connection):
    """aiosqlite's connection (its thread, queue and lifecycle) with ``OneHopCursor``s."""

    _pending_begin: str | None = None

    def begin_with_next_statement(self, begin: str) -> None:
        """Open the transaction with ``begin`` in the same trip as the next statement: a
        ``BEGIN IMMEDIATE`` that waits for the write lock waits there, and fails there
        (``database is locked``) if it must."""
        self._pending_begin = begin

    def take_pending_begin(self) -> str | None:
        begin, self._pending_begin = self._pending_begin, None
        return begin

    async def commit(self) -> None:
        # A BEGIN still pending means no statement ran: there is nothing to commit.
        if self.take_pending_begin() is None:
            await self.in_thread(self._conn.commit)

    @property
    def raw(self) -> sqlite3.Connection:
        """The sqlite3 connection; touched only from the connection's thread."""
        return self._conn

    async def in_thread(self, function: Callable[[], Any]) -> Any:
        return await self._execute(function)  # type: ignore[no-untyped-call]

    def cursor(self) -> OneHopCursor:  # type: ignore[override]
        return OneHopCursor(self)

    async def rollback(self) -> None:
        # sqlite3 reads this flag without touching the database: no hop, and nothing to undo
        # when no transaction is open (the pool's reset after every commit, or a transaction
        # whose BEGIN never left).
        self.take_pending_begin()
        if self._conn.in_transaction:
            await self.in_thread(self._conn.rollback)


def one_hop_connector(
    database: str, options: dict[str, Any]
) -> Callable[[], Awaitable[OneHopConnection]]:
    """For ``create_async_engine(async_creator=...)``: a started ``OneHopConnection`` to
    ``database``, opened with sqlite3 ``options`` (what the URL asked for)."""

    async def connect() -> OneHopConnection:
        connection = OneHopConnection(lambda: sqlite3.connect(database, **options), 64)
        connection._thread.daemon = True  # as SQLAlchemy does: a lost one never blocks exit
        await connection
        return connection

    return connect
