"""One writer per upload: the lease (in the upload's database row, Redis or not) with expiry,
renewal and a fencing token that keeps a writer who lost it from ever acknowledging bytes."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db.engine import create_engine, create_session_factory
from app.errors import UploadLocked, UploadLockLost
from app.uploads.locks import DatabaseLeaseStore, UploadLocks
from app.uploads.models import UploadRow
from app.uploads.repository import UploadRepository
from tests.files.conftest import VFolderHandle
from tests.uploads.test_tus_protocol import location

TTL = 1.2  # renewed every 0.4 s, trusted for 0.9 s after each: room for a slow database


@dataclass
class LockRig:
    locks: UploadLocks
    sessions: async_sessionmaker[AsyncSession]
    upload_id: uuid.UUID
    # What the keeper of the lease does when a holder stops renewing: forget it.
    expire: Callable[[], Awaitable[None]]


@pytest.fixture
async def rig(vfolder: VFolderHandle, settings: Settings) -> AsyncIterator[LockRig]:
    """The lease as the application builds it: in the database, with or without Redis."""
    upload_id = uuid.UUID((await location(vfolder)).rsplit("/", 1)[1])
    engine = create_engine(settings.effective_database_url)
    sessions = create_session_factory(engine)
    store = DatabaseLeaseStore(sessions)

    async def expire() -> None:
        async with sessions() as session, session.begin():
            await session.execute(
                update(UploadRow)
                .where(UploadRow.id == upload_id)
                .values(lock_expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )

    locks = UploadLocks(store, sessions, ttl_seconds=TTL)
    try:
        yield LockRig(locks, sessions, upload_id, expire)
    finally:
        await locks.close()
        await engine.dispose()


async def test_one_holder_at_a_time_and_each_new_holder_gets_a_larger_fence(rig: LockRig) -> None:
    async with rig.locks.hold(rig.upload_id) as first:
        with pytest.raises(UploadLocked):
            async with rig.locks.hold(rig.upload_id):
                pass
    async with rig.locks.hold(rig.upload_id) as second:
        assert second.fence > first.fence


async def test_a_lease_is_renewed_while_held(rig: LockRig) -> None:
    async with rig.locks.hold(rig.upload_id) as lease:
        await anyio.sleep(TTL * 2.5)
        lease.check()
        with pytest.raises(UploadLocked):
            async with rig.locks.hold(rig.upload_id):
                pass


async def test_a_holder_that_lost_its_lease_stops_and_cannot_acknowledge(rig: LockRig) -> None:
    async with rig.locks.hold(rig.upload_id) as stalled:
        await rig.expire()  # the stalled holder missed its renewals; the keeper forgot it
        async with rig.locks.hold(rig.upload_id) as successor:
            assert successor.fence > stalled.fence
            with anyio.fail_after(TTL * 2):
                while True:  # its next renewal finds the lease gone to someone else
                    try:
                        stalled.check()
                    except UploadLockLost:
                        break
                    await anyio.sleep(0.02)
            async with rig.sessions() as session, session.begin():
                repo = UploadRepository(session)
                assert not await repo.advance(
                    rig.upload_id, expected=0, new_offset=5, fence=stalled.fence
                )
                assert await repo.advance(
                    rig.upload_id, expected=0, new_offset=5, fence=successor.fence
                )


async def test_a_dead_holders_lease_runs_out(rig: LockRig) -> None:
    token = secrets.token_hex(8)
    store = rig.locks.store  # a holder that took the lease and died without releasing it
    assert await store.take(rig.upload_id, token, TTL)
    with pytest.raises(UploadLocked):
        async with rig.locks.hold(rig.upload_id):
            pass
    await anyio.sleep(TTL * 1.5)
    async with rig.locks.hold(rig.upload_id) as lease:
        lease.check()
