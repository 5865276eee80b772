"""OneFS parts: a directory quota per vfolder, its usage, and OneFS snapshots of the
vfolder's directory, all through PAPI (``drivers/dellemc/client.py``); files move over the
NFS mount.

- ``IfsPaths``: where a vfolder lives in the cluster's namespace. The volume's local root is
  the mount of the ``ifs_path`` export, so a vfolder at ``<root>/<rel>`` is
  ``<ifs_path>/<rel>`` for OneFS. Quotas and snapshots are looked up by that path, never by
  an id cached in a dot-file inside the vfolder (Backend.AI's ``.quota_id``: lost with the
  file, orphaning the quota, and counted against the quota it names).
- ``OneFsQuota`` (quota, fast usage): the directory quota on the vfolder's /ifs path,
  ``thresholds_on: fslogicalsize``, ``include_snapshots: false``. A new vfolder gets an
  accounting quota (no threshold) so that its usage is known at once; a limit sets the hard
  threshold and enforcement; unsetting clears the hard threshold and keeps the accounting
  quota (the usage stays fast), whatever the directory holds.
- ``OneFsSnapshots``: OneFS snapshots of the vfolder's path, named
  ``<prefix><vfolder hex>-<name>`` (names are cluster-wide), browsed read-only through the
  mount's ``<snapshot_dir>/<snapshot>/<rel>``, restored by copying back."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path, PurePosixPath
from typing import Any
from uuid import UUID

from anyio import to_thread

from drivers.base import SnapshotInfo
from drivers.dellemc.client import VENDOR, OneFsApi, as_int, as_optional_int
from drivers.errors import (
    BackendApiError,
    BackendObjectNotFound,
    BackendUnavailable,
    InvalidSnapshotName,
    PathNotFound,
    SnapshotNotFound,
)
from drivers.fsops import PosixFileOps
from drivers.layout import SnapshotLayout, VFolderLayout
from drivers.restore import restore_in_place
from drivers.staging import VFolderStaging

# Drivers know nothing of the app's structured logger: plain messages, no extra= fields.
log = logging.getLogger(__name__)
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class IfsPaths:
    """Local vfolder paths → their /ifs paths (see the module docstring)."""

    def __init__(self, layout: VFolderLayout, ifs_path: str) -> None:
        self.layout = layout
        self.ifs_root = PurePosixPath(ifs_path)

    def relative(self, vfolder_id: UUID) -> PurePosixPath:
        """The vfolder's path under the volume root (blocking: the layout may look)."""
        local = self.layout.vfolder_path(vfolder_id)
        return PurePosixPath(local.relative_to(self.layout.root).as_posix())

    def ifs(self, vfolder_id: UUID) -> str:
        return str(self.ifs_root / self.relative(vfolder_id))

    async def existing(self, vfolder_id: UUID) -> str:
        """The /ifs path of a vfolder whose directory exists; ``PathNotFound`` otherwise."""

        def look() -> str:
            if not self.layout.vfolder_path(vfolder_id).is_dir():
                raise PathNotFound(f"vfolder {vfolder_id} has no directory on this volume")
            return self.ifs(vfolder_id)

        return await to_thread.run_sync(look)


class OneFsQuota:
    """``QuotaCapable``, ``FastUsageCapable`` and ``PreparesVFolders``: the directory quota
    on the vfolder's /ifs path."""

    def __init__(self, api: OneFsApi, paths: IfsPaths) -> None:
        self.api = api
        self.paths = paths

    async def vfolder_created(self, vfolder_id: UUID) -> None:
        """An accounting quota, so that the usage is known (and exact) from the start. The
        vfolder is usable without one: when PAPI fails now, the first usage read or quota
        set makes it instead."""
        path = await self.paths.existing(vfolder_id)
        try:
            await self._ensure(path)
        except BackendUnavailable as exc:
            log.warning(
                "no accounting quota made for new vfolder %s; it will be made on first use: %s",
                vfolder_id,
                exc,
            )

    async def set_quota(self, vfolder_id: UUID, *, limit_bytes: int | None) -> None:
        if limit_bytes is not None and limit_bytes < 0:
            raise ValueError("a quota limit cannot be negative")
        path = await self.paths.existing(vfolder_id)
        quota = await self.api.find_directory_quota(path)
        if quota is None:
            if limit_bytes is None:
                return  # nothing to unset
            await self._create(path, hard=limit_bytes)
            return
        # Unset clears the threshold only: OneFS needs no empty directory for that (unlike
        # Backend.AI's unset, which refused a scope with sub-directories).
        await self.api.update_hard_threshold(_quota_id(quota), hard=limit_bytes)

    async def get_quota(self, vfolder_id: UUID) -> int | None:
        quota = await self.api.find_directory_quota(await self.paths.existing(vfolder_id))
        if quota is None:
            return None
        thresholds = quota.get("thresholds")
        if thresholds is None:
            return None
        if not isinstance(thresholds, dict):
            raise BackendApiError(f"{VENDOR} API: malformed answer: quota thresholds")
        return as_optional_int(thresholds.get("hard"), "thresholds.hard")

    async def usage_bytes(self, vfolder_id: UUID) -> int:
        """``usage.fslogical`` of the vfolder's quota (made, as an accounting quota, for a
        vfolder that has none). ``BackendUnavailable`` while OneFS has not finished
        counting (a new quota on a full directory waits for its QuotaScan job)."""
        path = await self.paths.existing(vfolder_id)
        quota = await self._ensure(path)
        usage = quota.get("usage")
        if not isinstance(usage, dict):
            raise BackendApiError(f"{VENDOR} API: malformed answer: the quota has no usage")
        if quota.get("ready") is False or usage.get("fslogical_ready") is False:
            raise BackendUnavailable(
                f"{VENDOR}: the usage of {path} is not ready (its quota scan has not finished)"
            )
        # ``fslogical`` since PAPI 8 (OneFS 8.2); ``logical`` before.
        value = usage.get("fslogical", usage.get("logical"))
        return as_int(value, "usage.fslogical")

    async def _ensure(self, path: str) -> dict[str, Any]:
        quota = await self.api.find_directory_quota(path)
        if quota is None:
            await self._create(path, hard=None)
            quota = await self.api.find_directory_quota(path)
            if quota is None:
                raise BackendApiError(f"{VENDOR}: the quota made on {path} is not listed")
        return quota

    async def _create(self, path: str, *, hard: int | None) -> None:
        """A quota on ``path``; when the POST fails or its outcome is unknown (a time-out),
        one made meanwhile (by another node, or by this very POST) is adopted instead."""
        try:
            await self.api.create_directory_quota(path, hard=hard)
        except BackendUnavailable as failure:
            if isinstance(failure, BackendApiError) and (failure.status or 0) < 400:
                raise  # the call succeeded but its answer was unreadable
            existing = await self.api.find_directory_quota(path)
            if existing is None:
                raise
            # Adopted: given our limit, but an accounting quota wanted for the usage never
            # clears the limit another caller has just set on it.
            if hard is not None:
                await self.api.update_hard_threshold(_quota_id(existing), hard=hard)


def _quota_id(quota: dict[str, Any]) -> str:
    quota_id = quota.get("id")
    if not isinstance(quota_id, str) or not quota_id:
        raise BackendApiError(f"{VENDOR} API: malformed answer: a quota without an id")
    return quota_id


class OneFsSnapshots:
    """``SnapshotCapable``: OneFS snapshots of the vfolder's directory."""

    def __init__(
        self,
        api: OneFsApi,
        paths: IfsPaths,
        *,
        prefix: str,
        snapshot_dir: str,
    ) -> None:
        self.api = api
        self.paths = paths
        self.layout = paths.layout
        self.prefix = prefix
        self.snapshot_dir = snapshot_dir
        self.staging = VFolderStaging(paths.layout)

    def onefs_name(self, vfolder_id: UUID, name: str) -> str:
        if not SNAPSHOT_NAME.match(name):
            raise InvalidSnapshotName(f"{name!r} is not a valid snapshot name")
        return f"{self._name_prefix(vfolder_id)}{name}"

    def _name_prefix(self, vfolder_id: UUID) -> str:
        return f"{self.prefix}{vfolder_id.hex}-"

    def snapshot_path(self, vfolder_id: UUID, name: str) -> Path:
        """Where the mount shows the vfolder as it was: ``<root>/<snapshot_dir>/<OneFS
        name>/<the vfolder's path under the root>``."""
        onefs = self.onefs_name(vfolder_id, name)
        return self.layout.root / self.snapshot_dir / onefs / self.paths.relative(vfolder_id)

    def snapshot_files(self, vfolder_id: UUID, name: str) -> PosixFileOps:
        path = self.snapshot_path(vfolder_id, name)
        return PosixFileOps(SnapshotLayout(root=path.parent, snapshot=path))

    async def create_snapshot(self, vfolder_id: UUID, *, name: str) -> SnapshotInfo:
        onefs = self.onefs_name(vfolder_id, name)
        path = await self.paths.existing(vfolder_id)
        try:
            made = await self.api.create_snapshot(onefs, path)
        except BackendUnavailable as failure:
            # A POST whose outcome is unknown is never sent again: look whether it was made.
            if isinstance(failure, BackendApiError) and failure.status is not None:
                raise
            found = await self._ours(vfolder_id, name, path)
            if found is None:
                raise
            made = found
        return self._info(made, name, default_created=time.time())

    async def list_snapshots(self, vfolder_id: UUID) -> list[SnapshotInfo]:
        path = await self.paths.existing(vfolder_id)
        prefix = self._name_prefix(vfolder_id)
        infos = []
        async for snapshot in self.api.snapshots():
            onefs = snapshot.get("name")
            if (
                isinstance(onefs, str)  # null while a snapshot is being deleted
                and onefs.startswith(prefix)
                and snapshot.get("path") == path
                and snapshot.get("state", "active") == "active"
            ):
                infos.append(self._info(snapshot, onefs[len(prefix) :], default_created=0.0))
        return sorted(infos, key=lambda s: (s.created_at, s.name))

    async def delete_snapshot(self, vfolder_id: UUID, *, name: str) -> None:
        self.onefs_name(vfolder_id, name)  # the name is checked before anything is asked
        path = await self.paths.existing(vfolder_id)
        snapshot = await self._ours(vfolder_id, name, path)
        if snapshot is None:
            raise SnapshotNotFound(f"no snapshot {name!r}")
        try:
            await self.api.delete_snapshot(_snapshot_id(snapshot))
        except BackendObjectNotFound:
            raise SnapshotNotFound(f"no snapshot {name!r}") from None

    async def restore_snapshot(self, vfolder_id: UUID, *, name: str) -> None:
        """The snapshot's files are copied into the vfolder's staging, the current files
        moved aside there, and the copies moved into place; what was there goes to the
        trash. Everything stays inside the vfolder's directory, so its quota (bound to
        that directory) stays as it is; while it runs the vfolder holds both copies, which
        its quota must have room for."""
        path = await self.paths.existing(vfolder_id)
        if await self._ours(vfolder_id, name, path) is None:
            raise SnapshotNotFound(f"no snapshot {name!r}")
        source = self.snapshot_path(vfolder_id, name)
        await to_thread.run_sync(self._restore_sync, vfolder_id, source)

    def _restore_sync(self, vfolder_id: UUID, source: Path) -> None:
        if not source.is_dir() or source.is_symlink():
            raise BackendUnavailable(
                f"the snapshot is not visible at {source}: is the {self.snapshot_dir} "
                "directory exposed to the NFS export?"
            )
        try:
            area = self.staging.prepare(vfolder_id)
        except OSError as exc:
            raise BackendUnavailable(f"cannot restore vfolder {vfolder_id}: {exc}") from exc
        restore_in_place(self.layout, vfolder_id, source, area, reserved=self.staging.reserved)

    async def _ours(self, vfolder_id: UUID, name: str, path: str) -> dict[str, Any] | None:
        """The OneFS snapshot behind ``name`` of this vfolder, or None (none of that name,
        or one of that name on another path: never ours to touch)."""
        try:
            snapshot = await self.api.get_snapshot(self.onefs_name(vfolder_id, name))
        except BackendObjectNotFound:
            return None
        if snapshot.get("path") != path or snapshot.get("state", "active") != "active":
            return None
        return snapshot

    @staticmethod
    def _info(snapshot: dict[str, Any], name: str, *, default_created: float) -> SnapshotInfo:
        created = snapshot.get("created")
        return SnapshotInfo(
            name=name,
            created_at=float(default_created if created is None else as_int(created, "created")),
            size_bytes=as_optional_int(snapshot.get("size"), "size"),
        )


def _snapshot_id(snapshot: dict[str, Any]) -> int | str:
    snapshot_id = snapshot.get("id")
    if isinstance(snapshot_id, bool) or not isinstance(snapshot_id, int | str):
        raise BackendApiError(f"{VENDOR} API: malformed answer: a snapshot without an id")
    return snapshot_id
