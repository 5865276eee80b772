"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from app.db.base import Base, import_models
from app.db.engine import create_engine
from app.db.migrate import MIGRATIONS_DIR, alembic_config, current_revision, head_revision


async def test_schema_is_at_head_and_matches_the_models(database_url: str) -> None:
    import_models()
    engine = create_engine(database_url)
    try:
        assert await current_revision(engine) == head_revision()

        def diff(connection: Connection) -> list[object]:
            return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()


async def test_downgrade_to_base_and_back(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite3'}")
    try:

        def cycle(connection: Connection) -> None:
            config = alembic_config(connection)
            command.upgrade(config, "head")
            command.downgrade(config, "base")
            command.upgrade(config, "head")

        async with engine.begin() as conn:
            await conn.run_sync(cycle)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


def test_revision_files_are_date_prefixed() -> None:
    files = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py"))
    assert files
    for name in files:
        assert name[:4].isdigit() and name[4] == "_", name
