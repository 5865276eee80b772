"""The composed volume driver: the required core (vfolders, trash, capacity, writability) over
the parts a backend is made of. A backend is a set of parts, not a subclass:

    Driver(
        backend="xfs",
        layout=layout,
        files=PosixFileOps(layout, staging=VFolderStaging(layout)),
        quota=XfsProjectQuota(...),   # or None
        usage=...,  snapshots=...,  clone=...,
    )

Parts with something to do when the volume starts (``StartsWithVolume``), when a vfolder
has just been made (``PreparesVFolders``) or before a trashed directory is removed
(``PreparesPurge``) are called then, each once."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

from drivers.base import (
    Capacity,
    DescribesMounts,
    FastCloneCapable,
    FastUsageCapable,
    ManagementApi,
    MountInfo,
    PreparesPurge,
    PreparesVFolders,
    QuotaCapable,
    SnapshotCapable,
    StartsWithVolume,
    TrashEntry,
    VFolderDirectories,
    VFolderTrash,
)
from drivers.errors import BackendUnavailable, VFolderDirectoryMissing
from drivers.fsops import PosixFileOps
from drivers.layout import LayoutError, VFolderLayout
from drivers.threads import run_blocking
from drivers.types import VFolderOwner

DEFAULT_DIR_MODE = 0o755


class PlainDirectories:
    """A vfolder is a plain directory with a configured mode."""

    def __init__(self, dir_mode: int = DEFAULT_DIR_MODE) -> None:
        self.dir_mode = dir_mode

    async def create(self, path: Path) -> None:
        await run_blocking(self._create_sync, path)

    def _create_sync(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir(mode=self.dir_mode, exist_ok=True)
            # mkdir's mode is filtered by the umask; the configured mode is what Agents expect.
            path.chmod(self.dir_mode)
        except OSError as exc:
            raise BackendUnavailable(f"cannot create {path}: {exc}") from exc


class Driver:
    """A volume driver made of parts; see the module docstring."""

    def __init__(
        self,
        *,
        backend: str,
        layout: VFolderLayout,
        files: PosixFileOps,
        directories: VFolderDirectories | None = None,
        quota: QuotaCapable | None = None,
        usage: FastUsageCapable | None = None,
        snapshots: SnapshotCapable | None = None,
        clone: FastCloneCapable | None = None,
        management: ManagementApi | None = None,
        trash: VFolderTrash | None = None,
        mount_options: tuple[str, ...] = (),
        mounts: DescribesMounts | None = None,
    ) -> None:
        self.backend = backend
        self.layout = layout
        self.root = layout.root
        self.files = files
        self.directories: VFolderDirectories = directories or PlainDirectories()
        self.quota = quota
        self.usage = usage
        self.snapshots = snapshots
        self.clone = clone
        self.management = management
        # Deleted vfolders go there instead of into .trash (ONTAP qtrees); None: .trash.
        self.trash = trash
        self.mount_options = mount_options
        self.mounts = mounts

    def _parts(self) -> Iterator[object]:
        """Every part once (one object may be several strategies: quota and usage)."""
        seen: set[int] = set()
        parts = (
            self.directories,
            self.quota,
            self.usage,
            self.snapshots,
            self.clone,
            self.management,
            self.trash,
        )
        for part in parts:
            if part is not None and id(part) not in seen:
                seen.add(id(part))
                yield part

    async def initialize(self) -> None:
        await run_blocking(self._initialize_sync)
        for part in self._parts():
            if isinstance(part, StartsWithVolume):
                await part.initialize()

    async def aclose(self) -> None:
        if self.management is not None:
            await self.management.aclose()

    def _initialize_sync(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # The proxy's own areas are private: no container user may browse them.
            self.layout.staging.mkdir(mode=0o700, exist_ok=True)
            self.layout.trash.mkdir(mode=0o700, exist_ok=True)
            self.layout.load()
        except OSError as exc:
            raise BackendUnavailable(f"cannot prepare volume at {self.root}: {exc}") from exc

    def vfolder_path(self, vfolder_id: UUID) -> Path:
        # Blocking only on a miss of a layout that looks on disk then (``backendai``): the
        # async methods here call it in the thread pool.
        return self.layout.vfolder_path(vfolder_id)

    def place(self, vfolder_id: UUID, owner: VFolderOwner | None) -> Path:
        """The path for a new vfolder (blocking: may look on disk for an earlier one)."""
        try:
            return self.layout.place(vfolder_id, owner)
        except LayoutError as exc:
            raise BackendUnavailable(str(exc)) from exc

    async def create_vfolder(self, vfolder_id: UUID, *, owner: VFolderOwner | None = None) -> None:
        path = await run_blocking(self.place, vfolder_id, owner)
        await self.directories.create(path)
        for part in self._parts():
            if isinstance(part, PreparesVFolders):
                await part.vfolder_created(vfolder_id)

    async def vfolder_exists(self, vfolder_id: UUID) -> bool:
        return await run_blocking(lambda: self.vfolder_path(vfolder_id).is_dir())

    async def vfolder_ids(self) -> list[UUID]:
        return await run_blocking(lambda: list(self.layout.vfolder_ids()))

    async def move_to_trash(self, vfolder_id: UUID) -> TrashEntry:
        if self.trash is not None:
            return await self.trash.move_to_trash(vfolder_id)
        return await run_blocking(self._move_to_trash_sync, vfolder_id)

    def _move_to_trash_sync(self, vfolder_id: UUID) -> TrashEntry:
        name = self.layout.new_trash_name(vfolder_id)
        try:
            self.vfolder_path(vfolder_id).rename(self.layout.trash / name)
        except FileNotFoundError as exc:
            raise VFolderDirectoryMissing(str(vfolder_id)) from exc
        except OSError as exc:
            raise BackendUnavailable(f"cannot move vfolder {vfolder_id} to trash: {exc}") from exc
        return TrashEntry(name=name, vfolder_id=vfolder_id)

    async def list_trash(self) -> list[TrashEntry]:
        entries = await run_blocking(self._list_trash_sync)
        if self.trash is not None:
            entries += await self.trash.list_trash()
        return entries

    def _list_trash_sync(self) -> list[TrashEntry]:
        entries = []
        try:
            with os.scandir(self.layout.trash) as it:
                for item in it:
                    parsed = self.layout.parse_trash_name(item.name)
                    if parsed is not None:
                        vfolder_id, holds_files = parsed
                        entries.append(
                            TrashEntry(
                                name=item.name, vfolder_id=vfolder_id, holds_files=holds_files
                            )
                        )
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise BackendUnavailable(f"cannot list trash of {self.root}: {exc}") from exc
        return entries

    async def restore_from_trash(self, entry: TrashEntry) -> None:
        if self.trash is not None and self.trash.holds(entry):
            await self.trash.restore_from_trash(entry)
            return
        await run_blocking(self._restore_sync, entry)

    def _restore_sync(self, entry: TrashEntry) -> None:
        target = self.layout.restore_path(entry.name, entry.vfolder_id)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # rename() would silently replace an empty directory; refuse to clobber anything.
            if target.exists():
                raise BackendUnavailable(f"cannot restore {entry.name}: {target} exists")
            (self.layout.trash / entry.name).rename(target)
        except OSError as exc:
            raise BackendUnavailable(f"cannot restore {entry.name}: {exc}") from exc

    async def purge(self, entry: TrashEntry) -> None:
        if self.trash is not None and self.trash.holds(entry):
            await self.trash.purge(entry)
            return
        for part in self._parts():
            if isinstance(part, PreparesPurge):
                await part.before_purge(self.layout.trash / entry.name)
        await run_blocking(self._purge_sync, entry)

    def _purge_sync(self, entry: TrashEntry) -> None:
        # A purge cut short leaves the entry under the same name, so the next pass finishes
        # it; purgers on several nodes may race, and whoever loses just finds files gone.
        self._remove_tree(self.layout.trash / entry.name)

    @staticmethod
    def _remove_tree(path: Path) -> None:
        # shutil.rmtree walks with file descriptors on Linux and never follows symlinks, so a
        # symlink planted inside a vfolder cannot redirect the purge outside it.
        def on_error(_func: object, failed: str, exc: BaseException) -> None:
            if isinstance(exc, FileNotFoundError):
                return
            raise BackendUnavailable(f"cannot remove {failed}: {exc}") from exc

        if not path.exists() and not path.is_symlink():
            return

        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=on_error)
        else:
            shutil.rmtree(path, onerror=lambda f, p, info: on_error(f, p, info[1]))

    async def mount_info(self, vfolder_id: UUID) -> MountInfo:
        host_path = await run_blocking(self.vfolder_path, vfolder_id)
        return MountInfo(
            host_path=host_path,
            backend=self.backend,
            mount_options=self.mount_options,
            extra=self.mounts.mount_extra(host_path) if self.mounts is not None else {},
        )

    async def capacity(self) -> Capacity:
        return await run_blocking(self._capacity_sync)

    def _capacity_sync(self) -> Capacity:
        try:
            stat = os.statvfs(self.root)
        except OSError as exc:
            raise BackendUnavailable(f"cannot stat {self.root}: {exc}") from exc
        total = stat.f_blocks * stat.f_frsize
        free = stat.f_bavail * stat.f_frsize
        return Capacity(
            total_bytes=total, used_bytes=total - stat.f_bfree * stat.f_frsize, free_bytes=free
        )

    async def check_writable(self) -> None:
        await run_blocking(self._check_writable_sync)

    def _check_writable_sync(self) -> None:
        probe = self.layout.staging / f".probe-{secrets.token_hex(8)}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"ok")
            finally:
                os.close(fd)
            probe.unlink()
        except OSError as exc:
            detail = "read-only filesystem" if exc.errno == errno.EROFS else str(exc)
            raise BackendUnavailable(f"volume at {self.root} is not writable: {detail}") from exc
