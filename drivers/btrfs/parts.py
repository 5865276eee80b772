"""btrfs parts: a subvolume per vfolder, with every optional capability done by the
filesystem.

- ``BtrfsSubvolumes``: how a vfolder directory is made (``btrfs subvolume create``).
- ``BtrfsQgroups`` (quota, fast usage): a qgroup limit on the vfolder's subvolume (``btrfs
  qgroup limit``), which the kernel enforces on writes that never pass through the proxy
  (EDQUOT), and the qgroup's referenced bytes (``btrfs qgroup show --raw``).
- ``BtrfsSnapshots``: read-only snapshots in the volume's private ``.snapshots`` area.
- ``BtrfsClones``: a writable snapshot of the source subvolume, which shares every extent.

File operations are the generic POSIX ones. The volume root must be a directory on a btrfs
filesystem; quotas are enabled on it at start-up (idempotent). Commands go through an
injectable ``CommandRunner``, like the XFS quota."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path
from uuid import UUID

import anyio
from anyio import to_thread

from drivers.base import SnapshotInfo
from drivers.commands import CommandRunner
from drivers.errors import (
    BackendUnavailable,
    InvalidSnapshotName,
    PathNotFound,
    SnapshotNotFound,
)
from drivers.fsops import PosixFileOps
from drivers.layout import SnapshotLayout, VFolderLayout

SNAPSHOTS_DIR = ".snapshots"
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class BtrfsTools:
    """The ``btrfs`` binary, run through an injectable ``CommandRunner``."""

    def __init__(self, runner: CommandRunner, *, binary: str = "btrfs") -> None:
        self._runner = runner
        self._binary = binary

    async def run(self, *args: str) -> str:
        result = await self._runner.run([self._binary, *args])
        return result.check().stdout


async def existing_subvolume(layout: VFolderLayout, vfolder_id: UUID) -> Path:
    path = await to_thread.run_sync(layout.vfolder_path, vfolder_id)
    if not await to_thread.run_sync(path.is_dir):
        raise PathNotFound(f"vfolder {vfolder_id} has no subvolume on this volume")
    return path


class BtrfsSubvolumes:
    """A vfolder is a subvolume, so it can have a qgroup and be snapshotted."""

    def __init__(self, tools: BtrfsTools, *, dir_mode: int) -> None:
        self._tools = tools
        self.dir_mode = dir_mode

    async def create(self, path: Path) -> None:
        if await to_thread.run_sync(path.is_dir):
            return  # a replayed create
        await to_thread.run_sync(lambda: path.parent.mkdir(parents=True, exist_ok=True))
        await self._tools.run("subvolume", "create", str(path))
        await to_thread.run_sync(path.chmod, self.dir_mode)


class SharedSync:
    """``btrfs filesystem sync`` of the volume, shared by every caller who asked before it
    began: a burst of usage reads commits the filesystem at most twice, not once per read,
    and each read still counts everything written before it asked."""

    def __init__(self, tools: BtrfsTools, root: Path) -> None:
        self._tools = tools
        self._root = root
        self._lock = anyio.Lock()
        self._last_began = float("-inf")
        self.syncs = 0

    async def sync(self) -> None:
        asked = time.monotonic()
        async with self._lock:
            if self._last_began >= asked:  # began after we asked, and has finished
                return
            began = time.monotonic()
            await self._tools.run("filesystem", "sync", str(self._root))
            self._last_began = began
            self.syncs += 1


class BtrfsQgroups:
    """``QuotaCapable`` and ``FastUsageCapable``: the qgroup of the vfolder's subvolume."""

    def __init__(self, layout: VFolderLayout, tools: BtrfsTools) -> None:
        self.layout = layout
        self._tools = tools
        self.shared_sync = SharedSync(tools, layout.root)

    async def initialize(self) -> None:
        await self._tools.run("quota", "enable", str(self.layout.root))

    async def set_quota(self, vfolder_id: UUID, *, limit_bytes: int | None) -> None:
        limit = "none" if limit_bytes is None else str(limit_bytes)
        path = await existing_subvolume(self.layout, vfolder_id)
        await self._tools.run("qgroup", "limit", limit, str(path))

    async def get_quota(self, vfolder_id: UUID) -> int | None:
        return (await self._qgroup(vfolder_id))[1]

    async def usage_bytes(self, vfolder_id: UUID) -> int:
        # Qgroups are accounted when a transaction commits (every 30 s by default): a sync
        # first, so that what a container wrote a moment ago is counted.
        await self.shared_sync.sync()
        return (await self._qgroup(vfolder_id))[0]

    async def _qgroup(self, vfolder_id: UUID) -> tuple[int, int | None]:
        """(referenced bytes, max referenced or None) of the vfolder's own qgroup."""
        path = await existing_subvolume(self.layout, vfolder_id)
        return parse_qgroup_show(
            await self._tools.run("qgroup", "show", "-rfe", "--raw", str(path))
        )


class BtrfsClones:
    """``FastCloneCapable``: a writable snapshot of the source subvolume, sharing every
    extent."""

    def __init__(self, layout: VFolderLayout, tools: BtrfsTools) -> None:
        self.layout = layout
        self._tools = tools

    async def clone_vfolder(self, source_id: UUID, target_id: UUID) -> None:
        target = await to_thread.run_sync(self.layout.vfolder_path, target_id)
        await to_thread.run_sync(lambda: target.parent.mkdir(parents=True, exist_ok=True))
        if await to_thread.run_sync(target.exists):
            await self._tools.run("subvolume", "delete", str(target))  # an earlier attempt's
        source = await existing_subvolume(self.layout, source_id)
        await self._tools.run("subvolume", "snapshot", str(source), str(target))


class BtrfsSnapshots:
    """``SnapshotCapable``: read-only snapshots in the volume's private ``.snapshots`` area."""

    def __init__(self, layout: VFolderLayout, tools: BtrfsTools, quota: BtrfsQgroups) -> None:
        self.layout = layout
        self._tools = tools
        self._quota = quota  # a restored subvolume keeps the vfolder's byte limit

    @property
    def snapshots_root(self) -> Path:
        return self.layout.root / SNAPSHOTS_DIR

    async def initialize(self) -> None:
        await to_thread.run_sync(lambda: self.snapshots_root.mkdir(mode=0o700, exist_ok=True))

    def snapshot_path(self, vfolder_id: UUID, name: str) -> Path:
        if not SNAPSHOT_NAME.match(name):
            raise InvalidSnapshotName(f"{name!r} is not a valid snapshot name")
        return self.snapshots_root / vfolder_id.hex / name

    def snapshot_files(self, vfolder_id: UUID, name: str) -> PosixFileOps:
        path = self.snapshot_path(vfolder_id, name)
        return PosixFileOps(SnapshotLayout(root=path.parent, snapshot=path))

    async def create_snapshot(self, vfolder_id: UUID, *, name: str) -> SnapshotInfo:
        path = self.snapshot_path(vfolder_id, name)
        await to_thread.run_sync(lambda: path.parent.mkdir(mode=0o700, exist_ok=True))
        source = await existing_subvolume(self.layout, vfolder_id)
        await self._tools.run("subvolume", "snapshot", "-r", str(source), str(path))
        return await to_thread.run_sync(_snapshot_info, path)

    async def list_snapshots(self, vfolder_id: UUID) -> list[SnapshotInfo]:
        directory = self.snapshots_root / vfolder_id.hex

        def listing() -> list[Path]:
            return sorted(directory.iterdir()) if directory.is_dir() else []

        infos = []
        for path in await to_thread.run_sync(listing):
            info = await to_thread.run_sync(_snapshot_info, path)
            # The space only this snapshot holds: what deleting it would give back.
            output = await self._tools.run("qgroup", "show", "-f", "--raw", str(path))
            exclusive = parse_qgroup_exclusive(output)
            infos.append(SnapshotInfo(info.name, info.created_at, exclusive))
        return sorted(infos, key=lambda s: s.created_at)

    async def restore_snapshot(self, vfolder_id: UUID, *, name: str) -> None:
        """A writable snapshot of the snapshot takes the vfolder's place; the current
        subvolume goes to the trash (purged like a deleted vfolder's files); the vfolder's
        byte limit moves to the new subvolume."""
        snapshot = self.snapshot_path(vfolder_id, name)
        if not await to_thread.run_sync(snapshot.is_dir):
            raise SnapshotNotFound(f"no snapshot {name!r}")
        current = await existing_subvolume(self.layout, vfolder_id)
        limit = await self._quota.get_quota(vfolder_id)
        fresh = self.layout.staging / f"restore-{vfolder_id.hex}-{secrets.token_hex(4)}"
        await self._tools.run("subvolume", "snapshot", str(snapshot), str(fresh))
        retired = self.layout.trash / self.layout.new_file_trash_name(vfolder_id)

        def swap() -> None:
            current.rename(retired)
            fresh.rename(current)

        await to_thread.run_sync(swap)
        if limit is not None:
            await self._quota.set_quota(vfolder_id, limit_bytes=limit)

    async def delete_snapshot(self, vfolder_id: UUID, *, name: str) -> None:
        path = self.snapshot_path(vfolder_id, name)
        if not await to_thread.run_sync(path.is_dir):
            raise SnapshotNotFound(f"no snapshot {name!r}")
        await self._tools.run("subvolume", "delete", str(path))


def _snapshot_info(path: Path) -> SnapshotInfo:
    return SnapshotInfo(name=path.name, created_at=path.stat().st_mtime, size_bytes=None)


def parse_qgroup_exclusive(output: str) -> int | None:
    """Exclusive bytes from ``btrfs qgroup show -f --raw`` (None when unreadable)."""
    for line in output.splitlines():
        fields = line.split()
        if len(fields) > 2 and re.fullmatch(r"\d+/\d+", fields[0]):
            return int(fields[2])
    return None


def parse_qgroup_show(output: str) -> tuple[int, int | None]:
    """The first qgroup line of ``btrfs qgroup show -rfe --raw``: referenced bytes and the
    referenced limit (``none`` → None)."""
    for line in output.splitlines():
        fields = line.split()
        if fields and re.fullmatch(r"\d+/\d+", fields[0]):
            referenced = int(fields[1])
            limit = fields[3] if len(fields) > 3 else "none"
            return referenced, None if limit == "none" else int(limit)
    raise BackendUnavailable(f"unreadable btrfs qgroup output: {output[:200]!r}")
