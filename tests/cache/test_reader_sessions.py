"""A vfolder read outside any transaction (every file operation's access check) opens a
database session only when the cache cannot answer: building one costs more CPU than the
cached read itself."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cache.memory import MemoryCache
from app.cache.none import NoCache
from app.db.base import Base
from app.db.engine import create_engine, create_session_factory
from app.errors import VFolderNotFound
from app.vfolders.models import VFolderRow
from app.vfolders.reader import VFolderReader


class CountedSessions:
    """A session factory that counts the sessions it opened."""

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory
        self.opened = 0

    def __call__(self) -> AsyncSession:
        self.opened += 1
        return self._factory()


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[CountedSessions]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reader.sqlite3'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield CountedSessions(create_session_factory(engine))
    await engine.dispose()


async def _new_vfolder(sessions: CountedSessions, name: str = "v") -> uuid.UUID:
    vid = uuid.uuid4()
    async with sessions() as session, session.begin():
        session.add(VFolderRow(id=vid, name=name, volume="local", owner_type="user", owner_id="al"))
    return vid


async def test_a_cached_read_opens_no_session(sessions: CountedSessions) -> None:
    reader = VFolderReader(cache=MemoryCache(), ttl_seconds=60)
    vid = await _new_vfolder(sessions)
    sessions.opened = 0
    first, _rules = await reader.read(sessions, vid)
    assert sessions.opened == 1  # a miss: read from the database, then cached
    again, rules = await reader.read(sessions, vid)
    assert sessions.opened == 1
    assert again == first and rules.owner.id == "al"


async def test_after_a_change_the_read_goes_to_the_database_again(
    sessions: CountedSessions,
) -> None:
    reader = VFolderReader(cache=MemoryCache(), ttl_seconds=60)
    vid = await _new_vfolder(sessions)
    await reader.read(sessions, vid)
    async with sessions() as session, session.begin():
        row = await session.get(VFolderRow, vid)
        assert row is not None
        row.name = "renamed"
        hooks: list[Any] = []
        await reader.invalidate(vid, hooks.append)
    for hook in hooks:
        await hook()
    sessions.opened = 0
    vfolder, _rules = await reader.read(sessions, vid)
    assert sessions.opened == 1 and vfolder.name == "renamed"


async def test_without_a_cache_every_read_goes_to_the_database(
    sessions: CountedSessions,
) -> None:
    reader = VFolderReader(cache=NoCache(), ttl_seconds=60)
    vid = await _new_vfolder(sessions)
    sessions.opened = 0
    for _ in range(2):
        await reader.read(sessions, vid)
    assert sessions.opened == 2
    with pytest.raises(VFolderNotFound):
        await reader.read(sessions, uuid.uuid4())


async def test_an_entry_just_read_is_reused_within_its_block_only(
    sessions: CountedSessions,
) -> None:
    """A facade's lookup, then the service's access check on the same vfolder: one read."""
    reader = VFolderReader(cache=NoCache(), ttl_seconds=60)  # every read asks the database
    vid, other = await _new_vfolder(sessions, "v"), await _new_vfolder(sessions, "w")
    sessions.opened = 0
    entry = await reader.read(sessions, vid)
    with reader.reusing(vid, entry):
        assert await reader.read(sessions, vid) == entry
        assert sessions.opened == 1
        await reader.read(sessions, other)  # another vfolder is read as ever
        assert sessions.opened == 2
    await reader.read(sessions, vid)  # after the block, read as ever
    assert sessions.opened == 3
