"""One writer per upload across every node: a lease with expiry and renewal, plus a fencing
token.

The lease lives in the upload's database row, whether or not Redis is configured: a PATCH
needs the database anyway (it reads the row and advances the offset there), so the lease adds
no dependency, and with one keeper there is never a second source of truth to disagree with
(a lease in Redis with a database fallback would let a node that lost Redis and a node that
still has it both believe they hold the upload). Whoever takes the lease then draws a new
fencing token from the same row; the offset only advances for the latest token
(``UploadRepository.advance``), so a writer that stalled past its lease can never
acknowledge bytes. It also stops writing by itself: ``UploadLease.check`` fails once the time
it can be sure of holding the lease has run out, counted from before each renewal was sent.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import UploadGone, UploadLocked, UploadLockLost
from app.observability.logging import get_logger
from app.uploads.repository import UploadRepository

log = get_logger(__name__)

# The share of the lease a holder trusts: the rest absorbs clock drift between this node and
# the lock's keeper, and the time a write already under way takes to finish.
TRUSTED_SHARE = 0.75
RENEWALS_PER_LEASE = 3


class LeaseStore(Protocol):
    """Where leases live: taken only when free, renewed and released only by their token."""

    async def take(self, upload_id: uuid.UUID, token: str, ttl: float) -> bool: ...

    async def renew(self, upload_id: uuid.UUID, token: str, ttl: float) -> bool: ...

    async def release(self, upload_id: uuid.UUID, token: str) -> None: ...

    async def close(self) -> None: ...


class UploadLease:
    """Held by one request while it writes an upload."""

    def __init__(self, upload_id: uuid.UUID, fence: int, trusted_until: float) -> None:
        self.upload_id = upload_id
        self.fence = fence
        self.trusted_until = trusted_until

    def check(self) -> None:
        """Raises once this holder can no longer be sure the lease is still its own."""
        if time.monotonic() >= self.trusted_until:
            raise UploadLockLost(f"the lock on upload {self.upload_id} expired mid-write")


class UploadLocks:
    def __init__(
        self, store: LeaseStore, sessions: async_sessionmaker[AsyncSession], *, ttl_seconds: float
    ) -> None:
        self.store = store
        self._sessions = sessions
        self.ttl = ttl_seconds

    @contextlib.asynccontextmanager
    async def hold(self, upload_id: uuid.UUID) -> AsyncIterator[UploadLease]:
        """The upload's lease for the duration of the block, renewed in the background;
        ``UploadLocked`` at once when another request holds it."""
        token = secrets.token_hex(16)
        sent_at = time.monotonic()
        if not await self.store.take(upload_id, token, self.ttl):
            raise UploadLocked(f"upload {upload_id} is being written by another request")
        try:
            async with self._sessions() as session, session.begin():
                fence = await UploadRepository(session).next_fence(upload_id)
            if fence is None:
                raise UploadGone(f"upload {upload_id} no longer exists")
            lease = UploadLease(upload_id, fence, sent_at + self.ttl * TRUSTED_SHARE)
            try:
                async with anyio.create_task_group() as renewals:
                    renewals.start_soon(self._keep_renewed, lease, token)
                    try:
                        yield lease
                    finally:
                        renewals.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                # The block failed; the renewals never raise.
                raise group.exceptions[0] from None
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self.store.release(upload_id, token)
                except Exception:  # it expires by itself
                    log.warning("could not release the lock of upload %s", upload_id, exc_info=True)

    async def _keep_renewed(self, lease: UploadLease, token: str) -> None:
        while True:
            await anyio.sleep(self.ttl / RENEWALS_PER_LEASE)
            sent_at = time.monotonic()
            try:
                renewed = await self.store.renew(lease.upload_id, token, self.ttl)
            except Exception as exc:
                log.warning("renewing the lock of upload %s failed: %s", lease.upload_id, exc)
                continue  # the lease runs out on its own unless a later renewal succeeds
            if not renewed:
                log.warning("the lock of upload %s was taken over", lease.upload_id)
                lease.trusted_until = -math.inf
                return
            lease.trusted_until = sent_at + self.ttl * TRUSTED_SHARE

    async def close(self) -> None:
        await self.store.close()


class DatabaseLeaseStore:
    """Leases in the upload's row: taken by a conditional UPDATE, so two nodes never both
    succeed."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def take(self, upload_id: uuid.UUID, token: str, ttl: float) -> bool:
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            return await UploadRepository(session).take_lease(
                upload_id, token=token, now=now, until=now + timedelta(seconds=ttl)
            )

    async def renew(self, upload_id: uuid.UUID, token: str, ttl: float) -> bool:
        until = datetime.now(UTC) + timedelta(seconds=ttl)
        async with self._sessions() as session, session.begin():
            return await UploadRepository(session).renew_lease(upload_id, token=token, until=until)

    async def release(self, upload_id: uuid.UUID, token: str) -> None:
        async with self._sessions() as session, session.begin():
            await UploadRepository(session).release_lease(upload_id, token=token)

    async def close(self) -> None:
        pass


def build_upload_locks(
    sessions: async_sessionmaker[AsyncSession], *, ttl_seconds: float
) -> UploadLocks:
    return UploadLocks(DatabaseLeaseStore(sessions), sessions, ttl_seconds=ttl_seconds)
