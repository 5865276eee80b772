"""WekaFS parts: a directory quota per vfolder and filesystem snapshots, through the REST API.

- ``WekaQuota`` (quota, fast usage): the directory quota of the vfolder's directory, which
  Weka keys by the directory's inode (``/fileSystems/{fs_uid}/quota/{inode_id}``). The inode
  is the ``st_ino`` of the vfolder directory as the proxy sees it: on a native ``wekafs``
  mount that is Weka's inode id; over NFS or SMB (protocol gateways) it may not be, and the
  quota would land on another directory or none — mount the filesystem natively.
- ``WekaSnapshots``: Weka snapshots are of the whole filesystem. Each vfolder's are named
  ``sp-<vfolder hex>-<name>`` (their access point too), so a vfolder lists only its own, and
  are browsed where Weka shows them on the mount:
  ``<mount_point>/.snapshots/<access point>/<the vfolder's path under the mount point>``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
from anyio import to_thread

from drivers.base import SnapshotInfo
from drivers.errors import (
    BackendApiError,
    BackendObjectNotFound,
    BackendUnavailable,
    InvalidSnapshotName,
    SnapshotNotFound,
    VFolderDirectoryMissing,
)
from drivers.fsops import PosixFileOps
from drivers.layout import SnapshotLayout, VFolderLayout
from drivers.restore import restore_in_place
from drivers.weka.client import VENDOR, WekaApi, iso_timestamp

SNAPSHOT_PREFIX = "sp-"
# A snapshot name as clients give it; the Weka name adds ``sp-`` and 33 characters.
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class WekaFilesystem:
    """The Weka filesystem the volume lives on: its uid, given or resolved from its name
    once (``GET /fileSystems``), and where it is mounted here."""

    def __init__(
        self,
        api: WekaApi,
        *,
        name: str | None,
        uid: str | None,
        mount_point: Path,
    ) -> None:
        self.api = api
        self.name = name
        self._uid = uid
        self.mount_point = mount_point
        self._lock = anyio.Lock()

    async def uid(self) -> str:
        if self._uid is None:
            async with self._lock:
                if self._uid is None:
                    assert self.name is not None
                    self._uid = await self.api.filesystem_uid(self.name)
        return self._uid


async def _existing_dir(layout: VFolderLayout, vfolder_id: UUID) -> Path:
    path = await to_thread.run_sync(layout.vfolder_path, vfolder_id)
    if not await to_thread.run_sync(path.is_dir):
        raise VFolderDirectoryMissing(str(vfolder_id))
    return path


def _inode(path: Path, vfolder_id: UUID) -> int:
    try:
        return path.lstat().st_ino
    except FileNotFoundError:
        raise VFolderDirectoryMissing(str(vfolder_id)) from None
    except OSError as exc:
        raise BackendUnavailable(f"cannot stat {path}: {exc}") from exc


class WekaQuota:
    """``QuotaCapable`` and ``FastUsageCapable``: the Weka directory quota of the vfolder's
    directory (see the module docstring for the inode caveat)."""

    def __init__(self, layout: VFolderLayout, filesystem: WekaFilesystem) -> None:
        self.layout = layout
        self.filesystem = filesystem

    async def initialize(self) -> None:
        # The filesystem must exist (and the credentials work) before the volume serves.
        await self.filesystem.uid()

    async def _key(self, vfolder_id: UUID) -> tuple[str, int]:
        path = await _existing_dir(self.layout, vfolder_id)
        inode = await to_thread.run_sync(_inode, path, vfolder_id)
        return await self.filesystem.uid(), inode

    async def set_quota(self, vfolder_id: UUID, *, limit_bytes: int | None) -> None:
        if limit_bytes is not None and limit_bytes < 0:
            raise ValueError(f"a quota limit cannot be negative: {limit_bytes}")
        fs_uid, inode = await self._key(vfolder_id)
        if limit_bytes is None:
            await self.filesystem.api.unset_quota(fs_uid, inode)
        else:
            await self.filesystem.api.set_quota(fs_uid, inode, limit_bytes)

    async def get_quota(self, vfolder_id: UUID) -> int | None:
        fs_uid, inode = await self._key(vfolder_id)
        record = await self.filesystem.api.quota(fs_uid, inode)
        if record is None:
            return None
        limit = record.get("hard_limit_bytes")
        if limit is None:
            return None
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise BackendApiError(f"{VENDOR} API: malformed answer: hard_limit_bytes is {limit!r}")
        return limit

    async def usage_bytes(self, vfolder_id: UUID) -> int:
        fs_uid, inode = await self._key(vfolder_id)
        record = await self.filesystem.api.quota(fs_uid, inode)
        if record is None:
            # Weka counts a directory's bytes only under a quota; 0 would be a lie.
            raise BackendObjectNotFound(
                f"{VENDOR}: vfolder {vfolder_id} has no directory quota, so Weka does not "
                "count its usage; setting a quota makes it"
            )
        used = record.get("used_bytes")
        if not isinstance(used, int) or isinstance(used, bool) or used < 0:
            raise BackendApiError(f"{VENDOR} API: malformed answer: used_bytes is {used!r}")
        return used


class WekaSnapshots:
    """``SnapshotCapable`` over Weka's filesystem snapshots; see the module docstring."""

    def __init__(
        self,
        layout: VFolderLayout,
        filesystem: WekaFilesystem,
        *,
        snapshots_dir: str = ".snapshots",
        reserved: frozenset[str] = frozenset(),
    ) -> None:
        self.layout = layout
        self.filesystem = filesystem
        self.snapshots_dir = snapshots_dir
        self.reserved = reserved  # the vfolder's in-tree staging: never restored or copied
        if not layout.root.is_relative_to(filesystem.mount_point):
            raise ValueError(
                f"volume path {layout.root} is not under mount_point {filesystem.mount_point}"
            )

    @staticmethod
    def weka_name(vfolder_id: UUID, name: str) -> str:
        """The snapshot's Weka name and access point."""
        if not SNAPSHOT_NAME.match(name):
            raise InvalidSnapshotName(f"{name!r} is not a valid snapshot name")
        return f"{SNAPSHOT_PREFIX}{vfolder_id.hex}-{name}"

    def snapshot_path(self, vfolder_id: UUID, name: str) -> Path:
        """The vfolder's directory as the snapshot shows it on the mount."""
        access_point = self.weka_name(vfolder_id, name)
        relative = self.layout.vfolder_path(vfolder_id).relative_to(self.filesystem.mount_point)
        return self.filesystem.mount_point / self.snapshots_dir / access_point / relative

    def snapshot_files(self, vfolder_id: UUID, name: str) -> PosixFileOps:
        path = self.snapshot_path(vfolder_id, name)
        return PosixFileOps(SnapshotLayout(root=path.parent, snapshot=path))

    def _own(self, vfolder_id: UUID, snapshots: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """This vfolder's snapshots by client name."""
        prefix = f"{SNAPSHOT_PREFIX}{vfolder_id.hex}-"
        own = {}
        for item in snapshots:
            weka_name = item.get("name")
            if isinstance(weka_name, str) and weka_name.startswith(prefix):
                name = weka_name[len(prefix) :]
                if SNAPSHOT_NAME.match(name):  # not one this driver made otherwise
                    own[name] = item
        return own

    async def _find(self, vfolder_id: UUID, name: str) -> dict[str, Any]:
        self.weka_name(vfolder_id, name)  # refuses a bad name before asking
        found = self._own(vfolder_id, await self.filesystem.api.snapshots()).get(name)
        if found is None:
            raise SnapshotNotFound(f"no snapshot {name!r}")
        return found

    async def create_snapshot(self, vfolder_id: UUID, *, name: str) -> SnapshotInfo:
        weka_name = self.weka_name(vfolder_id, name)
        await _existing_dir(self.layout, vfolder_id)
        fs_uid = await self.filesystem.uid()
        created = await self.filesystem.api.create_snapshot(
            fs_uid, name=weka_name, access_point=weka_name
        )
        if isinstance(created, dict) and isinstance(created.get("name"), str):
            return await self._info(vfolder_id, name, created)
        # An answer without the snapshot: read it back.
        return await self._info(vfolder_id, name, await self._find(vfolder_id, name))

    async def list_snapshots(self, vfolder_id: UUID) -> list[SnapshotInfo]:
        own = self._own(vfolder_id, await self.filesystem.api.snapshots())
        infos = [await self._info(vfolder_id, name, item) for name, item in own.items()]
        return sorted(infos, key=lambda s: (s.created_at, s.name))

    async def delete_snapshot(self, vfolder_id: UUID, *, name: str) -> None:
        found = await self._find(vfolder_id, name)
        uid = found.get("uid")
        if not isinstance(uid, str) or not uid:
            raise BackendApiError(f"{VENDOR} API: malformed answer: snapshot {name!r} has no uid")
        try:
            await self.filesystem.api.delete_snapshot(uid)
        except BackendObjectNotFound:
            raise SnapshotNotFound(f"no snapshot {name!r}") from None

    async def restore_snapshot(self, vfolder_id: UUID, *, name: str) -> None:
        """The snapshot's tree is copied into the vfolder's own staging area, then swapped in
        entry by entry; the vfolder's directory stays (its inode keys its quota, which thus
        stays as it is). The replaced content goes to the trash, or, where Weka refuses to
        move it out of the quota directory (EXDEV), is removed on the spot."""
        await self._find(vfolder_id, name)
        snapshot = self.snapshot_path(vfolder_id, name)
        if not await to_thread.run_sync(snapshot.is_dir):
            raise SnapshotNotFound(
                f"snapshot {name!r} is not visible at {snapshot} (is the filesystem mounted "
                "natively, with its .snapshots directory?)"
            )
        current = await _existing_dir(self.layout, vfolder_id)
        try:
            await to_thread.run_sync(self._restore_sync, vfolder_id, snapshot, current)
        except OSError as exc:
            raise BackendUnavailable(f"cannot restore snapshot {name!r}: {exc}") from exc

    def _restore_sync(self, vfolder_id: UUID, snapshot: Path, current: Path) -> None:
        staging = sorted(self.reserved)
        area = current / staging[0] if staging else self.layout.staging
        area.mkdir(mode=0o700, exist_ok=True)
        restore_in_place(self.layout, vfolder_id, snapshot, area, reserved=self.reserved)

    async def _info(self, vfolder_id: UUID, name: str, item: dict[str, Any]) -> SnapshotInfo:
        created = None
        for key in ("creationTime", "creation_time", "created_at", "createdAt"):
            created = iso_timestamp(item.get(key))
            if created is not None:
                break
        if created is None:
            # No creation time the API gave (or not one with its zone): the time of the
            # snapshot's directory on the mount, which Weka makes when it takes it.
            access_point = self.filesystem.mount_point / self.snapshots_dir
            access_point /= self.weka_name(vfolder_id, name)
            try:
                created = (await to_thread.run_sync(access_point.stat)).st_mtime
            except OSError:
                raise BackendApiError(
                    f"{VENDOR} API: malformed answer: snapshot {name!r} has no ISO creation "
                    f"time, and {access_point} cannot be read"
                ) from None
        return SnapshotInfo(name=name, created_at=created, size_bytes=None)
