"""CephFS parts: the vfolder directory is the quota realm, and every optional capability is
a virtual extended attribute or the virtual ``.snap`` directory of the mounted CephFS
(ceph-fuse or the kernel client); there is no management API.

- ``CephQuota`` (quota, fast usage): ``ceph.quota.max_bytes`` on the vfolder directory,
  which the Ceph client enforces on writes that never pass through the proxy (EDQUOT), and
  the MDS's recursive statistics ``ceph.dir.rbytes`` / ``ceph.dir.rfiles``.
- ``CephSnapshots``: ``mkdir <vfolder>/.snap/<name>`` takes a snapshot, ``rmdir`` drops it,
  the ``.snap`` listing lists them; browsing reads ``.snap/<name>`` through the safe file
  operations (read-only: CephFS refuses writes there with EROFS); a restore copies the
  snapshot's tree back into the vfolder directory, which stays in place (its snapshots and
  its quota belong to that directory inode).

Facts of CephFS this relies on:
- ``ceph.*`` attributes are virtual: ``getxattr`` of an unset quota fails with ENODATA;
  writing ``0`` removes the quota; a negative or non-numeric value is refused (EINVAL).
- The client enforces the quota lazily: ceph-fuse lets buffered writes overshoot by a few
  MiB; with an ``fsync`` after each write it stops at the limit.
- ``rbytes`` and friends are propagated by the MDS lazily: a write shows up in them within
  seconds (about 6 s on a single-node cluster), not at once. ``rentries`` counts
  directories, the vfolder's own included: the file count is ``rfiles``.
- A rename out of a quota realm fails with EXDEV (the file operations then remove a deleted
  directory where it is), and a directory that still has snapshots cannot be removed
  (``before_purge`` drops them first).

Every blocking call runs in the thread pool; the attribute calls go through ``XattrOps``, so
unit tests can use a dict-backed fake."""

from __future__ import annotations

import errno
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from uuid import UUID

from anyio import to_thread

from drivers.base import SnapshotInfo
from drivers.clone import copy_tree, remove_tree
from drivers.errors import (
    BackendUnavailable,
    InvalidSnapshotName,
    PathExists,
    SnapshotNotFound,
    VFolderDirectoryMissing,
)
from drivers.fsops import PosixFileOps
from drivers.layout import VFolderLayout, VolumeLayout
from drivers.staging import VFolderStaging
from drivers.types import CloneProgress

SNAP_DIR = ".snap"
QUOTA_XATTR = "ceph.quota.max_bytes"
RBYTES_XATTR = "ceph.dir.rbytes"
RFILES_XATTR = "ceph.dir.rfiles"
SNAP_BTIME_XATTR = "ceph.snap.btime"
# Ceph reads a quota of 0 as "no quota": a limit of 0 bytes is kept as 1 byte (nothing but
# empty files fits), which reads back as 0.
ZERO_LIMIT = 1
# Ceph itself refuses names starting with "_" (those it lists are an ancestor's snapshots).
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class XattrOps(Protocol):
    """Extended attributes of a path (never following a final symlink). ``get`` raises
    ``OSError`` as the system call does: ENODATA for an attribute that is not set."""

    def get(self, path: Path, name: str) -> bytes: ...

    def set(self, path: Path, name: str, value: bytes) -> None: ...


class OsXattrs:
    """The real attributes, through ``os.getxattr`` / ``os.setxattr``."""

    def get(self, path: Path, name: str) -> bytes:
        return os.getxattr(path, name, follow_symlinks=False)

    def set(self, path: Path, name: str, value: bytes) -> None:
        os.setxattr(path, name, value, follow_symlinks=False)


def parse_count(name: str, raw: bytes) -> int:
    """A non-negative decimal attribute value; ``BackendUnavailable`` naming the attribute
    for anything else (never a bare ValueError)."""
    text = raw.strip().rstrip(b"\0").decode("ascii", errors="replace")
    if not text.isdigit():
        raise BackendUnavailable(f"unreadable {name} value {text[:40]!r} (not a byte count)")
    return int(text)


def _failed(what: str, path: Path, exc: OSError) -> Exception:
    if exc.errno == errno.ENOENT:
        return VFolderDirectoryMissing(f"{path} does not exist")
    if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
        return BackendUnavailable(f"cannot {what} on {path}: not a CephFS mount ({exc.strerror})")
    return BackendUnavailable(f"cannot {what} on {path}: {exc}")


class CephQuota:
    """``QuotaCapable`` and ``FastUsageCapable`` on the vfolder directory's attributes."""

    def __init__(self, layout: VFolderLayout, xattrs: XattrOps | None = None) -> None:
        self.layout = layout
        self.xattrs: XattrOps = xattrs if xattrs is not None else OsXattrs()

    # -- blocking -----------------------------------------------------------------------

    def get_quota_sync(self, vfolder_id: UUID) -> int | None:
        path = self.layout.vfolder_path(vfolder_id)
        try:
            raw = self.xattrs.get(path, QUOTA_XATTR)
        except OSError as exc:
            if exc.errno == errno.ENODATA:
                return None  # no quota
            raise _failed("read the quota", path, exc) from exc
        limit = parse_count(QUOTA_XATTR, raw)
        if limit == 0:
            return None  # what some clients leave instead of removing it
        return 0 if limit == ZERO_LIMIT else limit

    def set_quota_sync(self, vfolder_id: UUID, limit_bytes: int | None) -> None:
        if limit_bytes is not None and limit_bytes < 0:
            raise ValueError(f"a byte limit cannot be negative ({limit_bytes})")
        path = self.layout.vfolder_path(vfolder_id)
        if limit_bytes is None:
            value = b"0"  # removes the attribute
        else:
            value = str(limit_bytes if limit_bytes > 0 else ZERO_LIMIT).encode()
        try:
            self.xattrs.set(path, QUOTA_XATTR, value)
        except OSError as exc:
            if limit_bytes is None and exc.errno == errno.ENODATA:
                return  # nothing to remove
            raise _failed("set the quota", path, exc) from exc

    def _read_count(self, vfolder_id: UUID, name: str) -> int:
        path = self.layout.vfolder_path(vfolder_id)
        try:
            return parse_count(name, self.xattrs.get(path, name))
        except OSError as exc:
            raise _failed(f"read {name}", path, exc) from exc

    # -- async --------------------------------------------------------------------------

    async def set_quota(self, vfolder_id: UUID, *, limit_bytes: int | None) -> None:
        await to_thread.run_sync(self.set_quota_sync, vfolder_id, limit_bytes)

    async def get_quota(self, vfolder_id: UUID) -> int | None:
        return await to_thread.run_sync(self.get_quota_sync, vfolder_id)

    async def usage_bytes(self, vfolder_id: UUID) -> int:
        """The MDS's recursive byte count of the vfolder (snapshots not counted; propagated
        lazily: a write shows up within seconds)."""
        return await to_thread.run_sync(self._read_count, vfolder_id, RBYTES_XATTR)

    async def file_count(self, vfolder_id: UUID) -> int:
        """Regular files below the vfolder (``rfiles``: ``rentries`` would count the
        directories too, the vfolder's own included)."""
        return await to_thread.run_sync(self._read_count, vfolder_id, RFILES_XATTR)


@dataclass(frozen=True, slots=True)
class CephSnapshotLayout(VolumeLayout):
    """A snapshot directory (``<vfolder>/.snap/<name>``) standing for its vfolder's, found
    when the file operations open it (in the thread pool)."""

    base: VFolderLayout | None = None
    name: str = ""

    def vfolder_path(self, vfolder_id: UUID) -> Path:
        assert self.base is not None
        return self.base.vfolder_path(vfolder_id) / SNAP_DIR / self.name


class CephSnapshots:
    """``SnapshotCapable`` through the vfolder directory's virtual ``.snap``."""

    def __init__(self, layout: VFolderLayout, quota: CephQuota, *, dir_mode: int = 0o755) -> None:
        self.layout = layout
        self._quota = quota  # a restore lifts the vfolder's limit for the swap
        self.dir_mode = dir_mode

    @staticmethod
    def check_name(name: str) -> str:
        if not SNAPSHOT_NAME.match(name):
            raise InvalidSnapshotName(f"{name!r} is not a valid snapshot name")
        return name

    def _snap_dir(self, vfolder_id: UUID) -> Path:
        return self.layout.vfolder_path(vfolder_id) / SNAP_DIR

    def snapshot_files(self, vfolder_id: UUID, name: str) -> PosixFileOps:
        layout = CephSnapshotLayout(
            root=self.layout.root, base=self.layout, name=self.check_name(name)
        )
        # The in-vfolder staging a snapshot caught is hidden, like the vfolder's own.
        return PosixFileOps(
            layout, staging=VFolderStaging(layout), reserved_everywhere=frozenset({SNAP_DIR})
        )

    # -- blocking -----------------------------------------------------------------------

    def _info(self, path: Path) -> SnapshotInfo:
        try:
            raw = self._quota.xattrs.get(path, SNAP_BTIME_XATTR)
            created_at = float(raw.strip().rstrip(b"\0").decode("ascii"))
        except (OSError, ValueError, UnicodeDecodeError):
            created_at = path.lstat().st_mtime
        try:
            size: int | None = parse_count(RBYTES_XATTR, self._quota.xattrs.get(path, RBYTES_XATTR))
        except (OSError, BackendUnavailable):
            size = None
        return SnapshotInfo(name=path.name, created_at=created_at, size_bytes=size)

    def create_sync(self, vfolder_id: UUID, name: str) -> SnapshotInfo:
        path = self._snap_dir(vfolder_id) / self.check_name(name)
        try:
            path.mkdir()
        except FileExistsError:
            raise PathExists(f"a snapshot named {name!r} exists") from None
        except FileNotFoundError as exc:
            raise VFolderDirectoryMissing(f"vfolder {vfolder_id} has no directory") from exc
        except OSError as exc:
            raise BackendUnavailable(f"cannot take snapshot {name!r}: {exc}") from exc
        return self._info(path)

    def list_sync(self, vfolder_id: UUID) -> list[SnapshotInfo]:
        snap_dir = self._snap_dir(vfolder_id)
        try:
            names = [p.name for p in snap_dir.iterdir()]
        except FileNotFoundError as exc:
            raise VFolderDirectoryMissing(f"vfolder {vfolder_id} has no directory") from exc
        except OSError as exc:
            raise BackendUnavailable(f"cannot list snapshots of {vfolder_id}: {exc}") from exc
        infos = []
        for name in names:
            if not SNAPSHOT_NAME.match(name):
                continue  # "_<name>_<ino>": an ancestor directory's snapshot, not ours
            try:
                infos.append(self._info(snap_dir / name))
            except FileNotFoundError:
                continue  # dropped meanwhile
        return sorted(infos, key=lambda s: (s.created_at, s.name))

    def delete_sync(self, vfolder_id: UUID, name: str) -> None:
        path = self._snap_dir(vfolder_id) / self.check_name(name)
        try:
            path.rmdir()
        except FileNotFoundError:
            raise SnapshotNotFound(f"no snapshot {name!r}") from None
        except OSError as exc:
            raise BackendUnavailable(f"cannot delete snapshot {name!r}: {exc}") from exc

    def restore_sync(self, vfolder_id: UUID, name: str) -> None:
        """The snapshot's tree copied into the volume's staging area, the vfolder's current
        entries moved into one trash entry, the copy's entries moved in. The vfolder
        directory itself stays (its snapshots and quota are its inode's). A rename out of a
        quota realm is refused (EXDEV), so the limit is lifted for the swap and set again
        after it, whatever happened."""
        snapshot = self._snap_dir(vfolder_id) / self.check_name(name)
        if not snapshot.is_dir():
            raise SnapshotNotFound(f"no snapshot {name!r}")
        current = self.layout.vfolder_path(vfolder_id)
        reserved = frozenset({SNAP_DIR, *VFolderStaging(self.layout).reserved})
        fresh = self.layout.staging / f"restore-{vfolder_id.hex}-{secrets.token_hex(4)}"
        retired = self.layout.trash / self.layout.new_file_trash_name(vfolder_id)
        limit = self._quota.get_quota_sync(vfolder_id)
        try:
            copy_tree(snapshot, fresh, CloneProgress(), dir_mode=self.dir_mode, skip=reserved)
            if limit is not None:
                self._quota.set_quota_sync(vfolder_id, None)
            retired.mkdir(mode=0o700)
            for entry in list(current.iterdir()):
                if entry.name not in reserved:
                    entry.rename(retired / entry.name)
            for entry in list(fresh.iterdir()):
                entry.rename(current / entry.name)
            fresh.rmdir()
        except OSError as exc:
            raise BackendUnavailable(f"cannot restore snapshot {name!r}: {exc}") from exc
        finally:
            remove_tree(fresh)
            if limit is not None:
                self._quota.set_quota_sync(vfolder_id, limit)

    def drop_all_sync(self, path: Path) -> None:
        """Every snapshot of the directory at ``path`` (a trashed vfolder), so it can go."""
        snap_dir = path / SNAP_DIR
        try:
            names = [p.name for p in snap_dir.iterdir()]
        except OSError:
            return  # gone, or not a directory CephFS snapshots
        for name in names:
            if SNAPSHOT_NAME.match(name):
                try:
                    (snap_dir / name).rmdir()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise BackendUnavailable(f"cannot drop snapshot {name!r}: {exc}") from exc

    # -- async --------------------------------------------------------------------------

    async def create_snapshot(self, vfolder_id: UUID, *, name: str) -> SnapshotInfo:
        return await to_thread.run_sync(self.create_sync, vfolder_id, name)

    async def list_snapshots(self, vfolder_id: UUID) -> list[SnapshotInfo]:
        return await to_thread.run_sync(self.list_sync, vfolder_id)

    async def delete_snapshot(self, vfolder_id: UUID, *, name: str) -> None:
        await to_thread.run_sync(self.delete_sync, vfolder_id, name)

    async def restore_snapshot(self, vfolder_id: UUID, *, name: str) -> None:
        await to_thread.run_sync(self.restore_sync, vfolder_id, name)

    async def before_purge(self, path: Path) -> None:
        await to_thread.run_sync(self.drop_all_sync, path)
