"""Telling "the database is gone" apart from a bug.

A database that cannot be reached is an outage of a dependency: requests answer 503
``/problems/unavailable`` with ``Retry-After`` and the CLI says in one line what it tried. A
driver's own exception for a refused connection is a plain ``OSError``; the connect hook turns
it into ``DatabaseUnreachable`` so that no filesystem ``OSError`` is ever mistaken for it."""

from __future__ import annotations

from typing import Any, Protocol

import anyio
from sqlalchemy import event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

STARTUP_CHECK_SECONDS = 10.0


class DatabaseUnreachable(Exception):
    """No connection to the database could be made; the message names where it was tried."""


def describe(url: str) -> str:
    """Where ``url`` points, without its password: ``host:port/database`` or the SQLite file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"the SQLite file {parsed.database}"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.host or 'localhost'}{port}/{parsed.database or ''}"


def guard_connections(engine: AsyncEngine, url: str) -> None:
    """Connecting raises ``DatabaseUnreachable`` instead of a bare ``OSError``/timeout."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except (OSError, TimeoutError) as error:
            raise DatabaseUnreachable(f"cannot connect to {describe(url)}: {error}") from error


def is_database_outage(error: BaseException) -> bool:
    """The database (not the request) is the problem: unreachable, the connection dropped,
    the server shutting down, the pool exhausted, SQLite's file unusable."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            DatabaseUnreachable | exc.OperationalError | exc.InterfaceError | exc.TimeoutError,
        ):
            return True
        if isinstance(current, exc.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


class _Logger(Protocol):
    def warning(self, msg: str, *args: object) -> None: ...
    def error(self, msg: str, *args: object, exc_info: BaseException) -> None: ...


def log_pass_failure(log: _Logger, what: str, error: BaseException) -> None:
    """A background pass that failed: one line while the database is away (it is retried
    every pass), the whole traceback for anything else."""
    if is_database_outage(error):
        log.warning("%s: the database is unavailable (%s); retrying", what, _root_cause(error))
    else:
        log.error("%s: pass failed", what, exc_info=error)


def require_reachable_blocking(url: str) -> None:
    """For the CLI before it starts anything: one query, or ``DatabaseUnreachable`` saying
    which setting points where."""
    from app.db.engine import create_engine

    async def _ping() -> None:
        engine = create_engine(url)
        try:
            with anyio.fail_after(STARTUP_CHECK_SECONDS):
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        anyio.run(_ping)
    except Exception as error:
        if not (is_database_outage(error) or isinstance(error, TimeoutError)):
            raise
        reason = _root_cause(error)
        raise DatabaseUnreachable(
            f"cannot reach the database of STORAGE_DATABASE_URL at {describe(url)}: {reason}"
        ) from error


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, TimeoutError) and not str(error):
        return f"no answer within {STARTUP_CHECK_SECONDS:g} s"
    text_ = str(error).strip().splitlines()
    return text_[0] if text_ else type(error).__name__
