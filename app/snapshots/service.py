"""Snapshots of a vfolder, where its volume's driver can take them (``SnapshotCapable``):
create, list (with the space each holds), delete, browse read-only, and restore one file or
the whole vfolder. Elsewhere every call answers 409 ``/problems/capability-missing``."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from app.auth.principal import Principal
from app.content.store import ContentStore
from app.errors import CapabilityMissing, InvalidRequest
from app.files.service import resume_point
from app.observability.logging import get_logger
from app.pagination import CursorSealer, Listing, principal_key
from app.permissions.access import AccessGate
from app.permissions.policy import VFolderOperation
from app.quotas.ledger import QuotaLedger
from app.quotas.reconcile import Reconciler
from drivers.base import SnapshotCapable, SnapshotInfo, Staged, VolumeDriver
from drivers.errors import SnapshotNotFound, VFolderDirectoryMissing
from drivers.paths import RelativePath, parse_relative_path
from drivers.types import FileEntry

log = get_logger(__name__)


class SnapshotService:
    def __init__(
        self,
        *,
        gate: AccessGate,
        ledger: QuotaLedger,
        reconciler: Reconciler,
        cursors: CursorSealer,
    ) -> None:
        self._cursors = cursors
        self._gate = gate
        self._ledger = ledger
        self._content = ContentStore(ledger)
        self._reconciler = reconciler

    async def _driver(
        self, principal: Principal, vfolder_id: uuid.UUID, operation: VFolderOperation
    ) -> tuple[VolumeDriver, SnapshotCapable]:
        target = await self._gate.target(principal, vfolder_id, operation)
        vfolder, driver = target.vfolder, target.driver
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
            # Refuses directories and symlinks.
            handle = await self._content.open_read(source, vfolder_id, rel)
        try:

            async def fill(staged: Staged) -> None:
                await driver.files.copy_into_staged(handle, staged)

            await self._content.store(
                driver.files, vfolder_id, rel, fill, replace=True, parents=True
            )
        finally:
            await handle.close()


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
