"""Engine construction for PostgreSQL (asyncpg) and the embedded SQLite (aiosqlite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.db.availability import guard_connections
from app.db.one_hop_sqlite import one_hop_connector

SQLITE_BUSY_TIMEOUT_MS = 15_000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


# A database that does not answer a connection attempt within this is reported unreachable
# (asyncpg would wait a minute).
CONNECT_TIMEOUT_SECONDS = 10


def create_engine(url: str, *, pool_size: int = 10, **kwargs: Any) -> AsyncEngine:
    if is_sqlite(url):
        engine = _create_sqlite_engine(url, **kwargs)
    else:
        connect_args = {"timeout": CONNECT_TIMEOUT_SECONDS, **kwargs.pop("connect_args", {})}
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args=connect_args,
            **kwargs,
        )
    guard_connections(engine, url)
    return engine


def _create_sqlite_engine(url: str, **kwargs: Any) -> AsyncEngine:
    parsed = make_url(url)
    database = parsed.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # One connection: every transaction is BEGIN IMMEDIATE, so SQLite runs them one at a time
    # anyway. With more connections, the waiting ones sit in SQLite's busy handler, which polls
    # with sleeps of up to 100 ms (16 concurrent mkdirs: 26/s, requests over 2 s). Waiting for
    # the single pooled connection is an asyncio queue instead: first come, first served,
    # woken the moment the connection is back.
    kwargs.setdefault("pool_size", 1)
    kwargs.setdefault("max_overflow", 0)
    kwargs.setdefault("pool_timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    # What the URL asks of sqlite3 (path, uri=, timeout=…), read as SQLAlchemy's dialect does.
    (database_arg,), url_options = parsed.get_dialect()().create_connect_args(parsed)
    options = {**url_options, **kwargs.pop("connect_args", {})}
    engine = create_async_engine(
        url, async_creator=one_hop_connector(database_arg, options), **kwargs
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver (it would BEGIN lazily and DEFERRED):
        # a deferred read-then-write transaction fails at once with "database is locked" under
        # concurrency, whereas BEGIN IMMEDIATE waits up to busy_timeout for its turn.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Sent with the transaction's first statement, in the same thread hop.
        connection.connection.driver_connection.begin_with_next_statement("BEGIN IMMEDIATE")

    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
