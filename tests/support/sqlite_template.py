"""A migrated SQLite database for a test, copied from one built per test process.

Running the migrations for each of the suite's hundreds of SQLite tests cost more CPU than the
tests themselves on small machines; the copy is the same file the migrations produce, so every
test still starts on a schema built by the real migrations (tests/test_migrations.py drives the
migrations themselves)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

import anyio

from app.db.engine import create_engine
from app.db.migrate import upgrade_to_head


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


@cache
def _template() -> Path:
    place = Path(tempfile.mkdtemp(prefix="sqlite-template-"))
    atexit.register(shutil.rmtree, place, ignore_errors=True)
    template = place / "meta.sqlite3"
    anyio.run(migrate, sqlite_url(template))
    # Disposing the engine closed its last connection, which checkpoints the WAL into the
    # main file and removes it: the one file is the whole database.
    leftovers = sorted(p.name for p in place.iterdir() if p != template)
    assert not leftovers, f"the migrated template left {leftovers} beside it"
    return template


def migrated_sqlite(path: Path) -> str:
    """The URL of a fresh, migrated SQLite database at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template(), path)
    return sqlite_url(path)
