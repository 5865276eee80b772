"""The race a revoke must win: between the moment a node announces a narrowing change and
the moment it commits, another node reads the vfolder from the database (the old state, not
yet committed) and would cache it. If the announcing node then loses Redis, its announcement
after the commit is lost too; the old state must still never be served after the commit."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cache.redis import RedisCache
from app.db.engine import create_engine, create_session_factory
from app.db.session import AfterCommit
from app.permissions.models import GranteeType, Mode
from app.permissions.repository import GrantRepository
from app.vfolders.models import VFolderRow
from app.vfolders.reader import VFolderReader
from tests.support.services import REDIS_HOST, REDIS_PORT, redis_url_via
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
async def sessions(postgres_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    # PostgreSQL only: several nodes share it (and on SQLite every transaction takes the
    # write lock, so no read can slip between a change and its commit).
    engine = create_engine(postgres_url)
    yield create_session_factory(engine)
    await engine.dispose()


async def _bobs_grants(reader: VFolderReader, session: AsyncSession, vid: uuid.UUID) -> list[str]:
    _vfolder, rules = await reader.load(session, vid)
    return [g.mode.value for g in rules.grants if g.grantee_id == "bob"]


async def test_old_state_read_during_a_revoke_is_never_served_after_it(
    sessions: async_sessionmaker[AsyncSession], redis: str
) -> None:
    vid = uuid.uuid4()
    async with sessions() as session, session.begin():
        session.add(VFolderRow(id=vid, name="v", volume="local", owner_type="user", owner_id="al"))
        await session.flush()
        await GrantRepository(session).upsert(
            vid, grantee_type=GranteeType.USER, grantee_id="bob", mode=Mode.RO, granted_by="al"
        )
    prefix = f"sp-test-{secrets.token_hex(6)}:"
    link_a = TcpProxy(REDIS_HOST, REDIS_PORT)
    await link_a.start()
    cache_a = RedisCache(redis_url_via(link_a.url_host), key_prefix=prefix)
    cache_b = RedisCache(redis, key_prefix=prefix)
    node_a = VFolderReader(cache=cache_a, ttl_seconds=60)
    node_b = VFolderReader(cache=cache_b, ttl_seconds=60)
    try:
        async with sessions() as session:
            assert await _bobs_grants(node_b, session, vid) == ["ro"]  # node B's cache warm

        # Node A revokes: announced, not yet committed.
        hooks: list[AfterCommit] = []
        async with sessions() as revoking:
            await GrantRepository(revoking).remove(
                vid, grantee_type=GranteeType.USER, grantee_id="bob"
            )
            await node_a.guard_access_change(vid, hooks.append)
            # Meanwhile node B reads the old state from the database.
            async with sessions() as session:
                assert await _bobs_grants(node_b, session, vid) == ["ro"]
            # Node A loses Redis, commits; its announcement after the commit is lost.
            await link_a.cut()
            await revoking.commit()
        for hook in hooks:
            await hook()

        for _ in range(3):
            async with sessions() as session:
                assert await _bobs_grants(node_b, session, vid) == []
    finally:
        await cache_a.close()
        await cache_b.close()
        await link_a.cut()
        async with sessions() as session, session.begin():
            await session.execute(delete(VFolderRow).where(VFolderRow.id == vid))
