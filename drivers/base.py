"""The driver contract: a small required core every backend implements, and one Protocol per
optional capability.

A driver is composed, not inherited (``drivers.driver.Driver``): a layout strategy, the file
operations with their staging placement, the way a vfolder directory is made, and optional
quota, usage, snapshot and clone strategies. A driver *has* a capability when the strategy
for it is present and implements its protocol; what a volume advertises is derived from that
(see ``capabilities_of``), never kept by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable
from uuid import UUID

from drivers.paths import RelativePath
from drivers.types import (
    CloneProgress,
    Committed,
    FileEntry,
    FileVersion,
    Usage,
    UsageScan,
    VFolderOwner,
)


@dataclass(frozen=True, slots=True)
class Capacity:
    total_bytes: int
    used_bytes: int
    free_bytes: int


@dataclass(frozen=True, slots=True)
class MountInfo:
    """What an Agent needs to bind-mount a vfolder into a container."""

    host_path: Path
    backend: str
    mount_options: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TrashEntry:
    """A deleted directory waiting in the volume's trash area to be purged: a whole deleted
    vfolder, or (``holds_files``) a directory deleted from inside a live one."""

    name: str
    vfolder_id: UUID
    holds_files: bool = False


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    name: str
    created_at: float
    size_bytes: int | None


class Staged(Protocol):
    """An upload being written where no vfolder shows it, until committed or discarded."""

    @property
    def size(self) -> int: ...

    async def write(self, chunks: list[bytes]) -> None:
        """All of ``chunks``, in order, at the end."""
        ...

    async def sync(self) -> None: ...

    async def truncate(self, length: int) -> None:
        """Back to ``length`` bytes (drops what was written but never acknowledged)."""
        ...

    async def try_lock(self) -> bool:
        """One writer at a time, across processes and nodes; held until closed."""
        ...

    async def close(self) -> None:
        """Let go of it, keeping its bytes (a tus upload resumes from them)."""
        ...

    async def discard(self) -> None:
        """Let go of it and remove its bytes."""
        ...


class Readable(Protocol):
    """A regular file open for reading; a read raises ``FileChanged`` if it changed."""

    @property
    def version(self) -> FileVersion: ...

    async def read(self, offset: int, size: int) -> bytes: ...

    async def close(self) -> None: ...


class VFolderFiles(Protocol):
    """Safe operations on the files of a volume's vfolders: no path ever leaves its vfolder,
    no symlink is ever followed, and every change reports what it did to the usage."""

    async def stat(self, vfolder_id: UUID, path: RelativePath) -> FileEntry: ...

    async def open_for_read(self, vfolder_id: UUID, path: RelativePath) -> Readable: ...

    async def list_page(
        self,
        vfolder_id: UUID,
        path: RelativePath,
        *,
        after: tuple[str, ...] | None,
        recursive: bool,
        limit: int,
    ) -> tuple[list[FileEntry], bool]:
        """Up to ``limit`` entries after ``after``, and whether more follow."""
        ...

    def listing(
        self, vfolder_id: UUID, path: RelativePath, *, recursive: bool, batch: int
    ) -> AsyncIterator[list[FileEntry]]: ...

    async def create_staged(self, vfolder_id: UUID) -> Staged:
        """Staging lives where the driver decides: a commit into ``vfolder_id`` is a rename."""
        ...

    async def stage(self, vfolder_id: UUID, chunks: list[bytes]) -> Staged:
        """``create_staged``, a write of ``chunks`` and a sync in one step (a small body,
        received whole)."""
        ...

    async def open_staged(self, vfolder_id: UUID, name: str, *, create: bool) -> Staged: ...

    async def staged_exists(self, vfolder_id: UUID, name: str) -> bool: ...

    async def remove_staged(self, vfolder_id: UUID, name: str) -> None: ...

    async def staging_candidates(self, *, older_than: float) -> list[str]:
        """Keys of upload staging files not written since ``older_than``: the file name,
        prefixed with ``<vfolder hex>/`` where staging is per vfolder."""
        ...

    async def remove_abandoned_staged(self, key: str, *, older_than: float) -> bool: ...

    async def concatenate_staged(self, target: Staged, parts: list[str]) -> None: ...

    async def copy_into_staged(self, source: Readable, staged: Staged) -> None: ...

    async def commit_staged(
        self,
        staged: Staged,
        vfolder_id: UUID,
        path: RelativePath,
        *,
        replace: bool,
        parents: bool,
        if_match: FileVersion | None = None,
        durable: bool = True,
    ) -> Committed:
        """``staged`` placed at ``path`` atomically. With ``durable`` false the placement is
        visible at once but may not survive a crash until ``sync_entry(path)``: the caller
        syncs after releasing its locks, so writers do not queue behind each other's fsync."""
        ...

    async def sync_entry(self, vfolder_id: UUID, path: RelativePath) -> None:
        """The directory entry at ``path`` made durable."""
        ...

    @property
    def reserved_names(self) -> frozenset[str]:
        """Names at a vfolder's root that are the proxy's own (in-vfolder staging)."""
        ...

    async def receive_copy(
        self,
        source_root: Path,
        vfolder_id: UUID,
        progress: CloneProgress,
        *,
        skip: frozenset[str] = frozenset(),
    ) -> None: ...

    async def discard_copy(self, vfolder_id: UUID) -> None: ...

    async def free_name(self, vfolder_id: UUID, path: RelativePath) -> RelativePath: ...

    async def missing_entries(self, vfolder_id: UUID, path: RelativePath) -> int:
        """How many of ``path`` and its parents do not exist (what a ``mkdir -p`` adds)."""
        ...

    async def mkdir(
        self, vfolder_id: UUID, path: RelativePath, *, parents: bool, exist_ok: bool
    ) -> Usage: ...

    async def move(
        self, vfolder_id: UUID, source: RelativePath, target: RelativePath, *, overwrite: bool
    ) -> Usage: ...

    async def delete(self, vfolder_id: UUID, path: RelativePath, *, recursive: bool) -> Usage: ...

    async def usage(self, vfolder_id: UUID) -> Usage: ...

    async def scan_usage(self, vfolder_id: UUID, *, full: bool) -> UsageScan:
        """The usage walked on disk, incrementally unless ``full``; reserved names left out."""
        ...

    def forget_usage(self, vfolder_id: UUID) -> None:
        """Forget what walks of ``vfolder_id`` remembered (it was deleted)."""
        ...


@runtime_checkable
class VolumeDriver(Protocol):
    """Required core. Every method that touches storage is async and never blocks the loop.

    Contract shared by all drivers:
    - a vfolder lives at ``vfolder_path(id)``; creating an existing one is a no-op;
    - ``move_to_trash`` is one atomic step that takes the vfolder out of sight at once and
      raises ``VFolderDirectoryMissing`` when there is nothing to move;
    - the proxy's own areas (trash, the volume's staging) are on the same filesystem but
      outside every vfolder; a driver that stages uploads inside the vfolder's quota boundary
      keeps that staging out of sight (``drivers.staging``);
    - I/O failures surface as ``BackendUnavailable``.

    The optional strategies are ``None`` where the backend has no such capability.
    """

    backend: str
    root: Path

    @property
    def files(self) -> VFolderFiles: ...

    # The optional strategies, None where the backend lacks the capability.
    @property
    def quota(self) -> QuotaCapable | None: ...

    @property
    def usage(self) -> FastUsageCapable | None: ...

    @property
    def snapshots(self) -> SnapshotCapable | None: ...

    @property
    def clone(self) -> FastCloneCapable | None: ...

    @property
    def management(self) -> ManagementApi | None:
        """The storage system's management API, where the backend has one."""
        ...

    async def initialize(self) -> None:
        """Prepare the volume (its own areas); safe to call on every start."""
        ...

    async def aclose(self) -> None:
        """Release what the driver holds open (API connections); on shutdown."""
        ...

    def vfolder_path(self, vfolder_id: UUID) -> Path: ...

    async def create_vfolder(self, vfolder_id: UUID, *, owner: VFolderOwner | None = None) -> None:
        """``owner`` decides where the vfolder goes in a layout that groups vfolders by owner
        (``backendai``); the default layout ignores it."""
        ...

    async def vfolder_exists(self, vfolder_id: UUID) -> bool: ...

    async def vfolder_ids(self) -> list[UUID]:
        """Every vfolder directory on the volume, registered or not."""
        ...

    async def move_to_trash(self, vfolder_id: UUID) -> TrashEntry: ...

    async def list_trash(self) -> list[TrashEntry]: ...

    async def restore_from_trash(self, entry: TrashEntry) -> None:
        """Put a trashed directory back at its vfolder path (undo of ``move_to_trash``)."""
        ...

    async def purge(self, entry: TrashEntry) -> None:
        """Remove a trashed directory for good; a missing entry is not an error."""
        ...

    async def mount_info(self, vfolder_id: UUID) -> MountInfo: ...

    async def capacity(self) -> Capacity: ...

    async def check_writable(self) -> None:
        """Raise ``BackendUnavailable`` unless a file can be created on the volume now."""
        ...


@runtime_checkable
class QuotaCapable(Protocol):
    """The backend enforces per-vfolder byte limits natively (XFS project quota, qgroups…)."""

    async def set_quota(self, vfolder_id: UUID, *, limit_bytes: int | None) -> None: ...

    async def get_quota(self, vfolder_id: UUID) -> int | None: ...


@runtime_checkable
class FastUsageCapable(Protocol):
    """The backend reports a vfolder's usage without walking its files."""

    async def usage_bytes(self, vfolder_id: UUID) -> int: ...


@runtime_checkable
class SnapshotCapable(Protocol):
    async def create_snapshot(self, vfolder_id: UUID, *, name: str) -> SnapshotInfo: ...

    async def list_snapshots(self, vfolder_id: UUID) -> list[SnapshotInfo]: ...

    async def delete_snapshot(self, vfolder_id: UUID, *, name: str) -> None: ...

    async def restore_snapshot(self, vfolder_id: UUID, *, name: str) -> None:
        """The whole vfolder back to the snapshot (its current content goes to the trash)."""
        ...

    def snapshot_files(self, vfolder_id: UUID, name: str) -> VFolderFiles:
        """The snapshot's files, through the same safe operations as the vfolder's (its
        vfolder id names the snapshot): read-only, for browsing and single-file restore."""
        ...


@runtime_checkable
class FastCloneCapable(Protocol):
    """The backend copies a vfolder in (near) constant time: reflinks, snapshots, file clones."""

    async def clone_vfolder(self, source_id: UUID, target_id: UUID) -> None: ...


@dataclass(frozen=True, slots=True)
class ManagementHealth:
    reachable: bool
    detail: str | None
    checked_at: datetime


@runtime_checkable
class ManagementApi(Protocol):
    """A storage system's management API (quotas, usage, snapshots go through it; data
    moves over the mount)."""

    async def check(self) -> ManagementHealth:
        """Whether it answers with our credentials now; a recent answer may be reused, so
        that a readiness scrape does not hammer the array."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class VFolderTrash(Protocol):
    """Where a deleted vfolder waits, for a backend whose vfolder directory cannot be renamed
    into the volume's ``.trash`` (an ONTAP qtree: only the API renames it). Its entries are
    listed, restored and purged beside those of ``.trash`` (directories deleted from inside
    a live vfolder), which stay the driver's own."""

    async def move_to_trash(self, vfolder_id: UUID) -> TrashEntry:
        """Out of sight in one step; ``VFolderDirectoryMissing`` when there is nothing."""
        ...

    async def list_trash(self) -> list[TrashEntry]: ...

    def holds(self, entry: TrashEntry) -> bool:
        """Whether ``entry`` is one of this strategy's (else it is in ``.trash``)."""
        ...

    async def restore_from_trash(self, entry: TrashEntry) -> None: ...

    async def purge(self, entry: TrashEntry) -> None:
        """Gone for good; a missing entry is not an error."""
        ...


@runtime_checkable
class VFolderDirectories(Protocol):
    """How a vfolder's directory is made: a plain directory, a btrfs subvolume…"""

    async def create(self, path: Path) -> None:
        """Make the vfolder directory at ``path``; an existing one is left as it is."""
        ...


@runtime_checkable
class DescribesMounts(Protocol):
    """A part that tells an Agent how to mount a vfolder itself rather than bind-mount a
    host path (an NFS export's server and path): ``MountInfo.extra``."""

    def mount_extra(self, host_path: Path) -> dict[str, str]: ...


@runtime_checkable
class StartsWithVolume(Protocol):
    """A strategy with something to check or prepare when its volume starts."""

    async def initialize(self) -> None: ...


@runtime_checkable
class PreparesVFolders(Protocol):
    """A strategy that sets a new vfolder up (an XFS project tag) once its directory exists."""

    async def vfolder_created(self, vfolder_id: UUID) -> None: ...


@runtime_checkable
class PreparesPurge(Protocol):
    """A strategy with something to undo before a trashed directory can be removed (CephFS
    refuses to remove a directory that still has snapshots)."""

    async def before_purge(self, path: Path) -> None: ...


# Capability name: (the driver's attribute holding the strategy, the protocol it implements).
CAPABILITY_PROTOCOLS: dict[str, tuple[str, type]] = {
    "quota": ("quota", QuotaCapable),
    "fast-usage": ("usage", FastUsageCapable),
    "snapshot": ("snapshots", SnapshotCapable),
    "fast-clone": ("clone", FastCloneCapable),
}


def capabilities_of(driver: object) -> list[str]:
    """The capability names a driver really has: those whose strategy is present and
    implements the capability's protocol."""
    strategies = [
        getattr(driver, attribute, None) for attribute, _ in CAPABILITY_PROTOCOLS.values()
    ]
    # A protocol check walks the protocol's members on every call (15 % of a GET /volumes):
    # the answer is remembered for each combination of strategy classes.
    key = tuple(type(strategy) for strategy in strategies)
    known = _CAPABILITIES_BY_STRATEGY_TYPES.get(key)
    if known is None:
        known = sorted(
            name
            for (name, (_, proto)), strategy in zip(
                CAPABILITY_PROTOCOLS.items(), strategies, strict=True
            )
            if isinstance(strategy, proto)
        )
        _CAPABILITIES_BY_STRATEGY_TYPES[key] = known
    return list(known)


_CAPABILITIES_BY_STRATEGY_TYPES: dict[tuple[type, ...], list[str]] = {}
