"""FlashBlade parts: snapshots of the whole file system, each named for one vfolder.

A FlashBlade snapshot is always of the whole file system (``<fs>.<suffix>``); there is no
directory snapshot. Each one the proxy takes carries its vfolder in the suffix
(``<vfolder hex>-<name>``), so a vfolder lists only its own, and its files are read through
the file system's snapshot directory on the mount:
``<mount_root>/.snapshot/<fs>.<suffix>/<the vfolder's path below mount_root>``.

Restoring copies that tree back (there is no per-directory rollback on the array): the copy
is made in the volume's staging area, then takes the vfolder's place, and the current
content goes to the trash (purged like a deleted vfolder's files)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from uuid import UUID

from anyio import to_thread

from drivers.base import SnapshotInfo
from drivers.clone import copy_tree, remove_tree
from drivers.errors import (
    BackendApiError,
    BackendUnavailable,
    InvalidSnapshotName,
    PathNotFound,
    SnapshotNotFound,
)
from drivers.fsops import PosixFileOps
from drivers.layout import SnapshotLayout, VFolderLayout
from drivers.purestorage.client import FileSystemSnapshot, FlashBladeApi
from drivers.types import CloneProgress

# Purity object names: letters, digits and dashes, beginning with a letter or digit, at most
# 63 characters (inferred from the FlashArray/FlashBlade naming rules; no source consulted
# states the suffix limit). The suffix is "<32 hex>-<name>", which leaves 30 for the name.
SUFFIX_MAX = 63
SUFFIX_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


def suffix_prefix(vfolder_id: UUID) -> str:
    return f"{vfolder_id.hex}-"


def snapshot_suffix(vfolder_id: UUID, name: str) -> str:
    """The array-side suffix of ``vfolder_id``'s snapshot ``name``; ``InvalidSnapshotName``
    for a name FlashBlade would refuse or that would not fit."""
    prefix = suffix_prefix(vfolder_id)
    if not SUFFIX_NAME.match(name) or len(prefix) + len(name) > SUFFIX_MAX:
        raise InvalidSnapshotName(
            f"{name!r} is not a valid FlashBlade snapshot name: letters, digits and dashes, "
            f"beginning with a letter or digit, at most {SUFFIX_MAX - len(prefix)} characters"
        )
    suffix = prefix + name
    return suffix


class FlashBladeSnapshots:
    """``SnapshotCapable`` over file-system snapshots; see the module docstring.

    ``mount_root`` is where the file system's root is mounted: a vfolder's path relative to
    it is its path inside every snapshot. ``eradicate``: a deleted snapshot is eradicated at
    once, else left destroyed for the array's eradication delay (arrays with SafeMode refuse
    manual eradication)."""

    def __init__(
        self,
        layout: VFolderLayout,
        api: FlashBladeApi,
        *,
        mount_root: Path,
        snapshot_directory: str = ".snapshot",
        eradicate: bool = True,
    ) -> None:
        self.layout = layout
        self.api = api
        self.mount_root = mount_root
        self.snapshot_directory = snapshot_directory
        self.eradicate = eradicate

    def snapshot_path(self, vfolder_id: UUID, name: str) -> Path:
        """Where the snapshot shows the vfolder's files (blocking on a layout that looks on
        disk)."""
        suffix = snapshot_suffix(vfolder_id, name)
        relative = self.layout.vfolder_path(vfolder_id).relative_to(self.mount_root)
        return (
            self.mount_root
            / self.snapshot_directory
            / f"{self.api.file_system}.{suffix}"
            / relative
        )

    def snapshot_files(self, vfolder_id: UUID, name: str) -> PosixFileOps:
        path = self.snapshot_path(vfolder_id, name)
        return PosixFileOps(SnapshotLayout(root=path.parent, snapshot=path))

    async def create_snapshot(self, vfolder_id: UUID, *, name: str) -> SnapshotInfo:
        suffix = snapshot_suffix(vfolder_id, name)
        path = await to_thread.run_sync(self.layout.vfolder_path, vfolder_id)
        if not await to_thread.run_sync(path.is_dir):
            raise PathNotFound(f"vfolder {vfolder_id} has no directory on this volume")
        return _info(await self.api.create_snapshot(suffix), vfolder_id)

    async def list_snapshots(self, vfolder_id: UUID) -> list[SnapshotInfo]:
        found = await self.api.snapshots(suffix_prefix(vfolder_id))
        infos = [_info(snapshot, vfolder_id) for snapshot in found]
        return sorted(infos, key=lambda s: (s.created_at, s.name))

    async def _existing(self, vfolder_id: UUID, name: str) -> str:
        """The array's name of the vfolder's snapshot ``name``; ``SnapshotNotFound``."""
        suffix = snapshot_suffix(vfolder_id, name)
        for snapshot in await self.api.snapshots(suffix_prefix(vfolder_id)):
            if snapshot.suffix == suffix:
                return snapshot.name
        raise SnapshotNotFound(f"no snapshot {name!r}")

    async def delete_snapshot(self, vfolder_id: UUID, *, name: str) -> None:
        full_name = await self._existing(vfolder_id, name)
        await self.api.destroy_snapshot(full_name)
        if not self.eradicate:
            return
        try:
            await self.api.eradicate_snapshot(full_name)
        except BackendApiError as exc:
            if exc.status is None or exc.status >= 500:
                raise
            # A retried eradication whose first attempt went through is refused: gone is
            # what was asked. Anything else is reported.
            if await self._still_there(full_name):
                raise

    async def _still_there(self, full_name: str) -> bool:
        items = await self.api.items(
            "file-system-snapshots",
            {"names_or_owner_names": self.api.file_system, "filter": f"name='{full_name}'"},
        )
        return any(isinstance(item, dict) and item.get("name") == full_name for item in items)

    async def restore_snapshot(self, vfolder_id: UUID, *, name: str) -> None:
        await self._existing(vfolder_id, name)
        source = await to_thread.run_sync(self.snapshot_path, vfolder_id, name)
        await to_thread.run_sync(self._restore_sync, vfolder_id, source)

    def _restore_sync(self, vfolder_id: UUID, source: Path) -> None:
        if not source.is_dir():
            raise BackendUnavailable(
                f"snapshot directory {source} is not visible on the mount (is the file "
                "system's snapshot directory enabled, and mount_root its root?)"
            )
        current = self.layout.vfolder_path(vfolder_id)
        if not current.is_dir():
            raise PathNotFound(f"vfolder {vfolder_id} has no directory on this volume")
        fresh = self.layout.staging / f"restore-{vfolder_id.hex}-{secrets.token_hex(4)}"
        retired = self.layout.trash / self.layout.new_file_trash_name(vfolder_id)
        try:
            copy_tree(source, fresh, CloneProgress())
            current.rename(retired)
            try:
                fresh.rename(current)
            except OSError:
                retired.rename(current)  # the vfolder as it was, not gone
                raise
        except OSError as exc:
            remove_tree(fresh)
            raise BackendUnavailable(f"cannot restore vfolder {vfolder_id}: {exc}") from exc


def _info(snapshot: FileSystemSnapshot, vfolder_id: UUID) -> SnapshotInfo:
    return SnapshotInfo(
        name=snapshot.suffix.removeprefix(suffix_prefix(vfolder_id)),
        created_at=snapshot.created_ms / 1000,
        size_bytes=None,
    )
