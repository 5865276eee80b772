"""VAST parts: a quota object per vfolder directory, snapshots of that directory, and the
mapping from the local mount to the cluster's namespace.

- ``StoragePaths``: a vfolder's directory under the local mount (``<root>/<rel>``) is
  ``<storage_base_path>/<rel>`` on the cluster, the path VMS quota and snapshot objects name.
- ``VastQuota`` (quota, fast usage): one VMS quota object on the vfolder's path, made when a
  limit is first set (an existing object on that path is adopted, never an error), its
  ``hard_limit``/``soft_limit`` patched after, deleted when the limit is unset; its
  ``used_capacity`` is the vfolder's usage. The object's id is remembered in memory only
  (no dot file inside the vfolder): it is found again by path.
- ``VastSnapshots``: a VMS snapshot of the vfolder's path, named ``<vfolder hex>_<name>``
  (snapshot names are cluster-wide), browsed through the mount's
  ``<vfolder>/.snapshot/<snapshot name>/`` directory; a whole-vfolder restore copies that
  tree back into the vfolder. The snapshot API shapes are unverified (drivers/vast/api.py).

Uploads are staged inside the vfolder (``VFolderStaging``: its quota boundary). The
``.snapshot`` directory is the cluster's: VAST does not list it in a directory (it is
reached by name), so walks, listings and clones of a vfolder never see it; a restore leaves
it alone explicitly."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from uuid import UUID

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
from drivers.layout import VFolderLayout, VolumeLayout
from drivers.restore import restore_in_place
from drivers.staging import VFolderStaging
from drivers.vast.api import Quota, Snapshot, VastApi

SNAPSHOT_DIR = ".snapshot"
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# A POST answered with one of these may mean "a quota exists on that path already" (VMS:
# 400, inferred; 409 by REST convention). 503 never does: it is an outage (reference §5).
ALREADY_EXISTS_STATUSES = frozenset({400, 409})


class StoragePaths:
    """Local mount path → the cluster's path of the same directory."""

    def __init__(self, layout: VFolderLayout, base: PurePosixPath) -> None:
        self.layout = layout
        self.base = base

    def of(self, local: Path) -> str:
        relative = local.relative_to(self.layout.root)
        return str(self.base.joinpath(*relative.parts))

    async def vfolder(self, vfolder_id: UUID, *, must_exist: bool) -> tuple[Path, str]:
        """(local directory, cluster path) of a vfolder; ``VFolderDirectoryMissing`` when it
        must exist and does not."""

        def look() -> tuple[Path, str, bool]:
            local = self.layout.vfolder_path(vfolder_id)
            return local, self.of(local), local.is_dir()

        local, path, exists = await to_thread.run_sync(look)
        if must_exist and not exists:
            raise VFolderDirectoryMissing(f"vfolder {vfolder_id} has no directory on this volume")
        return local, path


class VastQuota:
    """``QuotaCapable`` and ``FastUsageCapable`` over one VMS quota object per vfolder."""

    def __init__(self, api: VastApi, paths: StoragePaths) -> None:
        self.api = api
        self.paths = paths
        self._ids: dict[UUID, tuple[str, int]] = {}  # vfolder → (cluster path, quota id)

    @staticmethod
    def quota_name(vfolder_id: UUID) -> str:
        return f"storage-proxy-{vfolder_id.hex}"

    async def set_quota(self, vfolder_id: UUID, *, limit_bytes: int | None) -> None:
        if limit_bytes is None:
            _, path = await self.paths.vfolder(vfolder_id, must_exist=False)
            quota = await self._quota(vfolder_id, path)
            if quota is not None:
                with contextlib.suppress(BackendObjectNotFound):  # gone already
                    await self.api.delete_quota(quota.id)
            self._ids.pop(vfolder_id, None)
            return
        _, path = await self.paths.vfolder(vfolder_id, must_exist=True)
        cached = self._ids.get(vfolder_id)
        if cached is not None and cached[0] == path:
            try:
                await self.api.update_quota(cached[1], limit=limit_bytes)
                return
            except BackendObjectNotFound:
                self._ids.pop(vfolder_id, None)  # deleted behind our back
        existing = await self.api.find_quota(path)
        if existing is None:
            existing = await self._create(vfolder_id, path, limit_bytes)
        else:
            await self.api.update_quota(existing.id, limit=limit_bytes)
        self._ids[vfolder_id] = (path, existing.id)

    async def _create(self, vfolder_id: UUID, path: str, limit: int) -> Quota:
        try:
            return await self.api.create_quota(
                name=self.quota_name(vfolder_id), path=path, limit=limit
            )
        except BackendApiError as exc:
            if exc.status not in ALREADY_EXISTS_STATUSES:
                raise
            # Made meanwhile (another node, or a POST whose answer was lost): adopt it. A
            # 400 for any other reason finds nothing and is raised as it came.
            adopted = await self.api.find_quota(path)
            if adopted is None:
                raise
            await self.api.update_quota(adopted.id, limit=limit)
            return adopted

    async def get_quota(self, vfolder_id: UUID) -> int | None:
        _, path = await self.paths.vfolder(vfolder_id, must_exist=False)
        quota = await self._quota(vfolder_id, path)
        if quota is None or not quota.hard_limit:
            return None  # no object, or one without a byte limit (0: VMS's "none", inferred)
        return quota.hard_limit

    async def usage_bytes(self, vfolder_id: UUID) -> int:
        _, path = await self.paths.vfolder(vfolder_id, must_exist=True)
        quota = await self._quota(vfolder_id, path)
        if quota is None:
            raise BackendObjectNotFound(
                f"VAST has no quota object on {path}: its usage is known once a limit is set"
            )
        if quota.used_capacity is None:
            raise BackendApiError(f"VAST API: malformed answer: quota {quota.id} has no usage")
        return quota.used_capacity

    async def _quota(self, vfolder_id: UUID, path: str) -> Quota | None:
        cached = self._ids.get(vfolder_id)
        if cached is not None and cached[0] == path:
            with contextlib.suppress(BackendObjectNotFound):
                quota = await self.api.get_quota(cached[1])
                if quota.path.rstrip("/") == path.rstrip("/"):
                    return quota
            self._ids.pop(vfolder_id, None)
        found = await self.api.find_quota(path)
        if found is not None:
            self._ids[vfolder_id] = (path, found.id)
        return found


@dataclass(frozen=True, slots=True)
class VastSnapshotLayout(VolumeLayout):
    """A snapshot's directory in the mount (``<vfolder>/.snapshot/<name>``) standing for
    its vfolder's, so the file operations read it; computed when used (in the thread
    pool: a layout may look on disk)."""

    volume: VFolderLayout | None = None
    snapshot_dir: str = SNAPSHOT_DIR
    snapshot: str = ""

    def vfolder_path(self, vfolder_id: UUID) -> Path:
        assert self.volume is not None
        return self.volume.vfolder_path(vfolder_id) / self.snapshot_dir / self.snapshot


class VastSnapshots:
    """``SnapshotCapable``: VMS snapshots of the vfolder's path (see the module docstring)."""

    def __init__(
        self, api: VastApi, paths: StoragePaths, staging: VFolderStaging, *, snapshot_dir: str
    ) -> None:
        self.api = api
        self.paths = paths
        self.layout = paths.layout
        self.staging = staging
        self.snapshot_dir = snapshot_dir

    @staticmethod
    def vast_name(vfolder_id: UUID, name: str) -> str:
        if not SNAPSHOT_NAME.match(name):
            raise InvalidSnapshotName(f"{name!r} is not a valid snapshot name")
        return f"{vfolder_id.hex}_{name}"

    @staticmethod
    def snapshot_path(path: str) -> str:
        # A directory path with its trailing slash, as the VAST terraform provider's example
        # sends it (inferred; lists compare paths without it).
        return path.rstrip("/") + "/"

    def snapshot_files(self, vfolder_id: UUID, name: str) -> PosixFileOps:
        layout = VastSnapshotLayout(
            root=self.layout.root,
            volume=self.layout,
            snapshot_dir=self.snapshot_dir,
            snapshot=self.vast_name(vfolder_id, name),
        )
        return PosixFileOps(layout)

    async def create_snapshot(self, vfolder_id: UUID, *, name: str) -> SnapshotInfo:
        vast_name = self.vast_name(vfolder_id, name)
        local, path = await self.paths.vfolder(vfolder_id, must_exist=True)
        made = await self.api.create_snapshot(name=vast_name, path=self.snapshot_path(path))
        return await self._info(local, made, name)

    async def list_snapshots(self, vfolder_id: UUID) -> list[SnapshotInfo]:
        local, path = await self.paths.vfolder(vfolder_id, must_exist=False)
        prefix = f"{vfolder_id.hex}_"
        infos = [
            await self._info(local, snapshot, snapshot.name.removeprefix(prefix))
            for snapshot in await self.api.snapshots(self.snapshot_path(path))
            if snapshot.name.startswith(prefix)
        ]
        return sorted(infos, key=lambda s: (s.created_at, s.name))

    async def delete_snapshot(self, vfolder_id: UUID, *, name: str) -> None:
        snapshot = await self._find(vfolder_id, name)
        try:
            await self.api.delete_snapshot(snapshot.id)
        except BackendObjectNotFound:
            raise SnapshotNotFound(f"no snapshot {name!r}") from None

    async def _find(self, vfolder_id: UUID, name: str) -> Snapshot:
        vast_name = self.vast_name(vfolder_id, name)
        _, path = await self.paths.vfolder(vfolder_id, must_exist=False)
        for snapshot in await self.api.snapshots(self.snapshot_path(path)):
            if snapshot.name == vast_name:
                return snapshot
        raise SnapshotNotFound(f"no snapshot {name!r}")

    async def _info(self, local: Path, snapshot: Snapshot, name: str) -> SnapshotInfo:
        created = _timestamp(snapshot.created)
        if created is None:  # no creation time in the answer: the snapshot directory's
            directory = local / self.snapshot_dir / snapshot.name
            with contextlib.suppress(OSError):
                created = (await to_thread.run_sync(directory.stat)).st_mtime
        return SnapshotInfo(name=name, created_at=created or 0.0, size_bytes=None)

    async def restore_snapshot(self, vfolder_id: UUID, *, name: str) -> None:
        """The snapshot's tree is copied into the vfolder's staging area (inside its quota
        boundary), then swapped with the current content by renames within the vfolder;
        the current content goes to the trash (or, where the cluster refuses a rename out
        of the quota directory, is removed in place). The vfolder directory itself, which
        the quota object names, stays."""
        vast_name = self.vast_name(vfolder_id, name)
        await to_thread.run_sync(self._restore_sync, vfolder_id, vast_name, name)

    def _restore_sync(self, vfolder_id: UUID, vast_name: str, name: str) -> None:
        current = self.layout.vfolder_path(vfolder_id)
        if not current.is_dir():
            raise VFolderDirectoryMissing(f"vfolder {vfolder_id} has no directory")
        source = current / self.snapshot_dir / vast_name
        if not source.is_dir() or source.is_symlink():
            raise SnapshotNotFound(f"no snapshot {name!r}")
        # The staging area's uploads stay; the cluster's snapshot directory is not ours.
        reserved = self.staging.reserved | {self.snapshot_dir}
        try:
            area = self.staging.prepare(vfolder_id)
        except OSError as exc:
            raise BackendUnavailable(f"cannot restore {name!r}: {exc}") from exc
        restore_in_place(self.layout, vfolder_id, source, area, reserved=reserved)


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
