from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from app.config import Settings
from app.db.engine import create_engine
from tests.support.app import client_for, make_settings
from tests.support.cephfs import cephfs_status, session_status_line
from tests.support.loop_mounts import loop_mount_status
from tests.support.services import postgres_schema, redis_url
from tests.support.sqlite_template import migrate, migrated_sqlite


def pytest_report_header() -> list[str]:
    return [*loop_mount_status(), cephfs_status()]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = session_status_line()  # None where this process started no cluster (xdist)
    if line is not None:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One migrated private schema per test session."""
    with postgres_schema() as url:
        anyio.run(migrate, url)
        yield url


async def _truncate(url: str) -> None:
    from sqlalchemy import text

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM vfolders"))
            await conn.execute(text("DELETE FROM quotas"))
            await conn.execute(text("DELETE FROM tasks"))
            await conn.execute(text("DELETE FROM nodes"))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every metadata test runs on the embedded SQLite and on the real PostgreSQL, on a schema
    built by the real migrations. A module whose subject is not the metadata (paths, bytes,
    wire conformance) overrides this with ``one_database`` below."""
    if request.param == "sqlite":
        yield migrated_sqlite(tmp_path / "meta.sqlite3")
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    anyio.run(_truncate, url)


@pytest.fixture
def redis() -> str:
    return redis_url()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(data_dir=tmp_path / "data", database_url=database_url)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(settings) as client:
        yield client
