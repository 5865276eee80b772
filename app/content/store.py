"""The one owner of writes into vfolders, and of reads out of them.

A write is a staged file made visible by the driver's commit (a rename that never crosses a
quota boundary: the driver chose where staging lives). Around it, under the vfolder's row
lock: the change foreseen from the disk, settled in the ledger (which refuses what does not
fit, before anything moved), the commit, and the correction for whatever a write through a
mount changed meanwhile. PUT, form uploads, tus completion, clone (``commit_copy``: the
tree is copied while the vfolder is unreachable) and single-file snapshot restore all come
through here, so the ledger stays exact whichever way bytes arrive."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from app.content.foresight import foreseen_store
from app.quotas.ledger import QuotaLedger, VFolderChange
from drivers.base import Readable, Staged, VFolderFiles
from drivers.paths import RelativePath
from drivers.types import Committed, FileVersion, Usage

# Work that must land in the same transaction as the commit (a tus upload marked completed).
AlsoInTransaction = Callable[[AsyncSession, Committed], Awaitable[None]]


class ContentStore:
    def __init__(self, quotas: QuotaLedger) -> None:
        self._quotas = quotas

    async def commit(
        self,
        files: VFolderFiles,
        vfolder_id: uuid.UUID,
        rel: RelativePath,
        staged: Staged,
        *,
        replace: bool,
        parents: bool,
        if_match: FileVersion | None = None,
        holder: str | None = None,
        also: AlsoInTransaction | None = None,
    ) -> Committed:
        """``staged`` (synced) at ``rel``, and its usage in the ledger, as one step: either
        both happen or neither (``holder``'s reservation becomes the usage). The staged file
        stays its owner's on failure. Without a reservation or work of its own in the
        transaction, it goes in its vfolder's next batch (group commit)."""
        placing = _StagedPlacement(files, vfolder_id, rel, staged, replace, parents, if_match)
        if holder is None and also is None:
            await self._quotas.change_together(vfolder_id, placing)
        else:
            async with self._quotas.change(vfolder_id) as change:
                foreseen = await placing.foresee()
                await change.settle(foreseen, holder=holder)
                await change.correct(await placing.make() - foreseen)
                if also is not None:
                    await also(change.session, placing.committed)
        # Out of the vfolder's lock (and SQLite's one writer): concurrent writers' directory
        # fsyncs overlap, and the filesystem folds them into one journal commit. Acknowledged
        # only once durable; a crash before this leaves the ledger counting a file that may be
        # gone, which the usage reconcile takes back, never the other way round.
        await files.sync_entry(vfolder_id, rel)
        return placing.committed

    async def store(
        self,
        files: VFolderFiles,
        vfolder_id: uuid.UUID,
        rel: RelativePath,
        content: Callable[[Staged], Awaitable[object]] | list[bytes],
        *,
        replace: bool,
        parents: bool,
        if_match: FileVersion | None = None,
        holder: str | None = None,
    ) -> Committed:
        """A new staged file, filled by ``content`` (or holding it: a small body received
        whole), synced, then committed. On any failure (the client going away included) the
        staged file is removed and ``holder``'s reservation released: nothing of a failed
        write remains."""
        staged: Staged | None = None
        committed: Committed | None = None
        try:
            # On disk before the vfolder's row lock is taken: writers to one vfolder then
            # queue behind each other's rename, not behind each other's fsync.
            if isinstance(content, list):
                staged = await files.stage(vfolder_id, content)
            else:
                staged = await files.create_staged(vfolder_id)
                await content(staged)
                await staged.sync()
            committed = await self.commit(
                files,
                vfolder_id,
                rel,
                staged,
                replace=replace,
                parents=parents,
                if_match=if_match,
                holder=holder,
            )
        finally:
            if committed is None:
                with anyio.CancelScope(shield=True):
                    if staged is not None:
                        await staged.discard()
                    if holder is not None:
                        await self._quotas.release(holder)
        return committed

    async def commit_copy(
        self,
        files: VFolderFiles,
        vfolder_id: uuid.UUID,
        *,
        holder: str,
        also: Callable[[VFolderChange], Awaitable[None]],
    ) -> Usage:
        """A whole tree copied into a vfolder that nobody can reach yet (a clone's target):
        its usage walked, settled against ``holder``'s reservation (refused when it no longer
        fits), and ``also`` (the vfolder made reachable) in the same transaction."""
        usage = await files.usage(vfolder_id)
        async with self._quotas.change(vfolder_id) as change:
            await change.settle(usage, holder=holder)
            await also(change)
        return usage

    @staticmethod
    async def open_read(files: VFolderFiles, vfolder_id: uuid.UUID, rel: RelativePath) -> Readable:
        """A regular file of the vfolder, open for reading (directories and symlinks are
        refused); the caller closes it."""
        return await files.open_for_read(vfolder_id, rel)


@dataclass
class _StagedPlacement:
    """A staged file put at its path: foreseen from the disk, then committed by the driver."""

    files: VFolderFiles
    vfolder_id: uuid.UUID
    rel: RelativePath
    staged: Staged
    replace: bool
    parents: bool
    if_match: FileVersion | None
    _committed: Committed | None = None

    async def foresee(self) -> Usage:
        return await foreseen_store(
            self.files,
            self.vfolder_id,
            self.rel,
            self.staged.size,
            replace=self.replace,
            parents=self.parents,
        )

    async def make(self) -> Usage:
        self._committed = await self.files.commit_staged(
            self.staged,
            self.vfolder_id,
            self.rel,
            replace=self.replace,
            parents=self.parents,
            if_match=self.if_match,
            durable=False,
        )
        return self._committed.added - self._committed.replaced

    @property
    def committed(self) -> Committed:
        if self._committed is None:
            raise RuntimeError("the staged file was not committed")
        return self._committed
