"""Snapshots of a vfolder, where its volume's driver can take them (``SnapshotCapable``):
create, list (with the space each holds), delete, browse read-only, and restore one file or
the whole vfolder. Elsewhere every call answers 409 ``/problems/capability-missing``."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.principal import Principal
from app.errors import CapabilityMissing, InvalidRequest
from app.files.service import foreseen_store, resume_point
from app.observability.logging import get_logger
from app.pagination import CursorSealer, Listing, principal_key
from app.permissions.policy import VFolderOperation
from app.quotas.ledger import QuotaLedger
from app.quotas.reconcile import Reconciler
from app.vfolders.reader import VFolderReader
from app.volumes.registry import VolumeRegistry
from drivers.base import SnapshotCapable, SnapshotInfo, VolumeDriver
from drivers.clone import copy_file_data
from drivers.errors import SnapshotNotFound, VFolderDirectoryMissing
from drivers.fsops import FileEntry
from drivers.paths import RelativePath, parse_relative_path

log = get_logger(__name__)


class SnapshotService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        reader: VFolderReader,
        volumes: VolumeRegistry,
        ledger: QuotaLedger,
        reconciler: Reconciler,
        cursors: CursorSealer,
    ) -> None:
        self._cursors = cursors
        self._sessions = sessions
        self._reader = reader
        self._volumes = volumes
        self._ledger = ledger
        self._reconciler = reconciler

    async def _driver(
        self, principal: Principal, vfolder_id: uuid.UUID, operation: VFolderOperation
    ) -> tuple[VolumeDriver, SnapshotCapable]:
        async with self._sessions() as session:
            vfolder, _ = await self._reader.load_authorized(
                session, principal, vfolder_id, operation
            )
        driver = self._volumes.get(vfolder.volume)
        if driver.snapshots is None:
            raise CapabilityMissing(
                f"volume {vfolder.volume} ({driver.backend}) cannot take snapshots",
                capability="snapshot",
                volume=vfolder.volume,
            )
        return driver, driver.snapshots

    async def create(self, principal: Principal, vfolder_id: uuid.UUID, name: str) -> SnapshotInfo:
        _, snapshots = await self._driver(principal, vfolder_id, VFolderOperation.WRITE_FILES)
        if any(s.name == name for s in await snapshots.list_snapshots(vfolder_id)):
            raise InvalidRequest(f"a snapshot named {name!r} exists already")
        info = await snapshots.create_snapshot(vfolder_id, name=name)
        log.info("snapshot created", extra={"vfolder_id": str(vfolder_id), "snapshot": name})
        return info

    async def all(self, principal: Principal, vfolder_id: uuid.UUID) -> list[SnapshotInfo]:
        _, snapshots = await self._driver(principal, vfolder_id, VFolderOperation.READ)
        return await snapshots.list_snapshots(vfolder_id)

    async def delete(self, principal: Principal, vfolder_id: uuid.UUID, name: str) -> None:
        _, snapshots = await self._driver(principal, vfolder_id, VFolderOperation.DELETE_FILES)
        await snapshots.delete_snapshot(vfolder_id, name=name)

    async def browse(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        name: str,
        path: str,
        *,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[FileEntry], str | None]:
        """One page of a snapshot's directory and the cursor of the next (None on the last),
        paged by name like the files list, the cursor sealed to this snapshot's listing."""
        _, snapshots = await self._driver(principal, vfolder_id, VFolderOperation.READ)
        files = snapshots.snapshot_files(vfolder_id, name)
        rel = parse_relative_path(path, existing=True)
        listing = _listing(principal, vfolder_id, name, rel)
        after = None
        if cursor is not None:
            after = resume_point(self._cursors.open(cursor, listing=listing, keys=("after",)))
        with _snapshot_missing_is(name):
            entries, more = await files.list_page(
                vfolder_id, rel, after=after, recursive=False, limit=limit
            )
        next_cursor = None
        if more and entries:
            next_cursor = self._cursors.seal({"after": [entries[-1].name]}, listing=listing)
        return entries, next_cursor

    async def restore(
        self, principal: Principal, vfolder_id: uuid.UUID, name: str, path: str | None
    ) -> None:
        """``path`` None: the whole vfolder; else that one file, replacing the current one."""
        # The whole vfolder rolled back destroys whatever was made since: that takes rwd.
        needed = VFolderOperation.DELETE_FILES if path is None else VFolderOperation.WRITE_FILES
        driver, snapshots = await self._driver(principal, vfolder_id, needed)
        if path is None:
            # Under the vfolder's row lock, so no write through the API lands mid-swap; the
            # ledger is then measured from what is on disk.
            async with self._ledger.change(vfolder_id):
                await snapshots.restore_snapshot(vfolder_id, name=name)
            await self._reconciler.vfolder(vfolder_id)
            log.info("vfolder restored", extra={"vfolder_id": str(vfolder_id), "snapshot": name})
            return
        await self._restore_file(driver, snapshots, vfolder_id, name, parse_relative_path(path))

    async def _restore_file(
        self,
        driver: VolumeDriver,
        snapshots: SnapshotCapable,
        vfolder_id: uuid.UUID,
        name: str,
        rel: RelativePath,
    ) -> None:
        source = snapshots.snapshot_files(vfolder_id, name)
        with _snapshot_missing_is(name):
            handle = await source.open_for_read(vfolder_id, rel)  # refuses dirs and symlinks
        staged = await driver.files.create_staged(vfolder_id)
        committed = False
        try:
            staged.size = await anyio.to_thread.run_sync(_copy_into, handle.fd, staged.fd)
            async with self._ledger.change(vfolder_id) as change:
                foreseen = await foreseen_store(
                    driver.files, vfolder_id, rel, staged.size, replace=True, parents=True
                )
                await change.settle(foreseen)
                done = await driver.files.commit_staged(
                    staged, vfolder_id, rel, replace=True, parents=True
                )
                committed = True
                await change.correct(done.added - done.replaced - foreseen)
        finally:
            await anyio.to_thread.run_sync(handle.close)
            if not committed:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await driver.files.discard_staged(staged)


@contextlib.contextmanager
def _snapshot_missing_is(name: str) -> Iterator[None]:
    """A snapshot's files stand for its vfolder's: their root missing means no snapshot."""
    try:
        yield
    except VFolderDirectoryMissing:
        raise SnapshotNotFound(f"no snapshot {name!r}") from None


def _listing(
    principal: Principal, vfolder_id: uuid.UUID, snapshot: str, rel: RelativePath
) -> Listing:
    """What a snapshot listing's cursor is bound to: replayed on anything else (another
    snapshot, directory, vfolder or caller, or the files list), it does not verify."""
    return {
        "endpoint": "snapshots-browse",
        "vfolder": str(vfolder_id),
        "snapshot": snapshot,
        "path": str(rel),
        "recursive": False,
        "sort": "name",
        "principal": principal_key(principal),
    }


def _copy_into(source_fd: int, target_fd: int) -> int:
    size = os.fstat(source_fd).st_size
    copy_file_data(source_fd, target_fd, size)
    return size
