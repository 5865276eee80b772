"""The recorded offset of a PATCH under way: what the upload's row says was durably written.

Recording is always fsync first, then a compare-and-set of the offset that only the current
lease holder's fencing token passes, so the recorded offset never counts a byte that is not
on disk and never moves for a writer that lost the upload. A PATCH records at its end, every
``CHECKPOINT_BYTES`` while it streams (so a crash or kill -9 loses at most that much), and,
when the client goes away mid-body, what it had received (tus: the server SHOULD keep it)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import UploadLockLost
from app.uploads.locks import UploadLease
from app.uploads.repository import UploadRepository
from drivers.base import Staged

# Between two checkpoints of a long PATCH. Each costs one fsync and one UPDATE; the fsync finds
# little left to write (the body writer starts writeback as it goes), and 8 MiB is a fraction
# of a second of upload on any network that matters.
CHECKPOINT_BYTES = 8 * 1024 * 1024


class RecordedProgress:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        staged: Staged,
        lease: UploadLease,
        *,
        offset: int,
        checkpoint_every: int | None,
    ) -> None:
        """``offset`` is the recorded offset the PATCH starts from (``staged.size`` now);
        ``checkpoint_every`` None records only when asked (all-or-nothing PATCHes)."""
        self._sessions = sessions
        self._staged = staged
        self._lease = lease
        self._checkpoint_every = checkpoint_every
        self.recorded = offset

    @property
    def upload_id(self) -> uuid.UUID:
        return self._lease.upload_id

    async def checkpoint(self) -> None:
        """Records when enough was written since the last record; after each batch."""
        every = self._checkpoint_every
        if every is not None and self._staged.size - self.recorded >= every:
            await self.record()

    async def record(self) -> None:
        """Makes everything written so far durable and the upload's offset."""
        size = self._staged.size
        if size == self.recorded:
            return
        await self._staged.sync()
        self._lease.check()
        async with self._sessions() as session, session.begin():
            advanced = await UploadRepository(session).advance(
                self._lease.upload_id,
                expected=self.recorded,
                new_offset=size,
                fence=self._lease.fence,
            )
        if not advanced:
            raise UploadLockLost(f"upload {self._lease.upload_id} was taken over mid-write")
        self.recorded = size
