"""NetApp ONTAP parts: a qtree per vfolder, a tree quota rule on it, and volume snapshots
read through the mount's ``.snapshot`` directory.

- ``QtreeLayout``: the volume's path is the NFS mount of the ONTAP volume's junction, and a
  vfolder is the qtree named by its id's hex at its root, ``<root>/<hex>`` (ONTAP makes
  qtrees only at a volume's root, so the sharded layout cannot be used).
- ``OntapVolume``: the volume's and its SVM's uuids, looked up by name once.
- ``Qtrees`` (how a vfolder directory is made): ``POST /api/storage/qtrees`` with the owner's
  user and group ids (else the qtree root belongs to root), a job waited for, then a wait
  until the directory shows over NFS (attribute caching hides it for a moment).
- ``QtreeQuota`` (quota, fast usage): one tree quota rule per qtree, made with the qtree
  (without a limit it only tracks, so that ONTAP reports the usage), its ``space.hard_limit``
  the vfolder's limit; quotas turned on on the volume where they are off, checked at every
  change (an administrator may have turned them off: nothing is remembered); the usage is
  ``space.used.total`` of the qtree's quota report.
- ``VolumeSnapshots``: an ONTAP snapshot is of the whole volume, so a vfolder's snapshots
  are named ``sp-<vfolder hex>-<name>``: each vfolder lists only its own. Its files are read
  at ``<root>/.snapshot/<snapshot>/<hex>`` (the volume's snapshot directory must be
  reachable over NFS: ``-snapdir-access true``, the default); a restore copies that tree
  back into the qtree.
- ``QtreeTrash``: a deleted vfolder's qtree renamed through the API, then purged through it.
- ``QtreeFileOps``: the POSIX file operations, with deletes and clone copies kept inside the
  qtree (ONTAP refuses a rename across qtrees).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
from anyio import to_thread

from drivers.base import SnapshotInfo, TrashEntry
from drivers.clone import copy_tree
from drivers.errors import (
    BackendApiError,
    BackendObjectNotFound,
    BackendQuotaExceeded,
    BackendUnavailable,
    InvalidSnapshotName,
    SnapshotNotFound,
    VFolderDirectoryMissing,
)
from drivers.fsops import PosixFileOps, PosixFileOpsSync
from drivers.layout import HEX_DIGITS, SnapshotLayout, VolumeLayout
from drivers.netapp.client import VENDOR, JobFailed, OntapApi, dig
from drivers.paths import RelativePath
from drivers.rest.client import require
from drivers.staging import VFOLDER_STAGING_DIR, VFolderStaging
from drivers.types import CloneProgress, Usage

SNAPSHOT_DIR = ".snapshot"
SNAPSHOT_PREFIX = "sp-"
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
KIB = 1024
# ONTAP's job error when quotas are already on (or being turned on) for the volume.
QUOTA_ALREADY_ON = "5308507"


@dataclass(frozen=True, slots=True)
class QtreeLayout(VolumeLayout):
    """A vfolder is the qtree ``<root>/<hex>``; ``.staging`` and ``.trash`` beside them."""

    def vfolder_path(self, vfolder_id: UUID) -> Path:
        return self.root / vfolder_id.hex

    def vfolder_ids(self) -> Iterator[UUID]:
        try:
            entries = sorted(self.root.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            name = entry.name
            if len(name) == 32 and all(c in HEX_DIGITS for c in name) and entry.is_dir():
                yield UUID(hex=name)


def qtree_name(vfolder_id: UUID) -> str:
    return vfolder_id.hex


class OntapVolume:
    """The ONTAP volume whose junction is mounted at the volume's path."""

    def __init__(self, api: OntapApi, *, name: str, svm: str | None) -> None:
        self.api = api
        self.name = name
        self.svm = svm
        self._ids: tuple[str, str] | None = None
        self._lock = anyio.Lock()

    async def ids(self) -> tuple[str, str]:
        """(volume uuid, SVM uuid), asked once."""
        async with self._lock:
            if self._ids is None:
                params = {"name": self.name, "fields": "uuid,name,svm.uuid,svm.name,nas.path"}
                if self.svm is not None:
                    params["svm.name"] = self.svm
                records = await self.api.records("/api/storage/volumes", params)
                if not records:
                    where = f" in SVM {self.svm}" if self.svm else ""
                    raise BackendUnavailable(f"ONTAP has no volume {self.name!r}{where}")
                if len(records) > 1:
                    raise BackendUnavailable(
                        f"ONTAP has {len(records)} volumes named {self.name!r}: set the "
                        "option svm to say which"
                    )
                record = records[0]
                self._ids = (
                    require(record, "uuid", str, vendor=VENDOR),
                    require(record, "svm.uuid", str, vendor=VENDOR),
                )
            return self._ids


class Qtrees:
    """``VFolderDirectories``: a vfolder directory is a qtree (see the module docstring)."""

    def __init__(
        self,
        layout: QtreeLayout,
        volume: OntapVolume,
        *,
        dir_mode: int,
        user_id: int,
        group_id: int,
        visibility_timeout_seconds: float,
    ) -> None:
        self.layout = layout
        self.volume = volume
        self.api = volume.api
        self.dir_mode = dir_mode
        self.user_id = user_id
        self.group_id = group_id
        self.visibility_timeout_seconds = visibility_timeout_seconds

    async def find(self, name: str) -> dict[str, Any] | None:
        volume_uuid, _ = await self.volume.ids()
        records = await self.api.records(
            "/api/storage/qtrees",
            {"volume.uuid": volume_uuid, "name": name, "fields": "id,name"},
        )
        return next((r for r in records if r.get("name") == name), None)

    async def create(self, path: Path) -> None:
        if path.parent != self.layout.root:
            raise BackendUnavailable(f"{path} is not at the root of the ONTAP volume")
        if await to_thread.run_sync(path.is_dir):
            return  # a replayed create
        name = path.name
        if await self.find(name) is None:
            volume_uuid, svm_uuid = await self.volume.ids()

            async def made() -> bool:
                return await self.find(name) is not None

            await self.api.run(
                "POST",
                "/api/storage/qtrees",
                json={
                    "svm": {"uuid": svm_uuid},
                    "volume": {"uuid": volume_uuid},
                    "name": name,
                    "security_style": "unix",
                    # ONTAP reads the mode's octal digits as a decimal number (755).
                    "unix_permissions": int(f"{self.dir_mode:o}"),
                    # Without them the qtree's root belongs to root (Backend.AI #1983).
                    "user": {"id": str(self.user_id)},
                    "group": {"id": str(self.group_id)},
                },
                what=f"creating qtree {name}",
                confirm=made,
            )
        await self.wait_visible(path)
        await to_thread.run_sync(self._settle_mode, path)

    def _settle_mode(self, path: Path) -> None:
        """The configured mode, set over NFS only where ONTAP did not already (whether it
        reads ``unix_permissions`` as octal digits, as its samples show, is not certain)."""
        try:
            if stat.S_IMODE(path.stat().st_mode) != self.dir_mode:
                path.chmod(self.dir_mode)
        except OSError as exc:
            raise BackendUnavailable(f"cannot set the mode of {path}: {exc}") from exc

    async def wait_visible(self, path: Path) -> None:
        """Until the new qtree shows over NFS: a listing of the parent refreshes the
        client's cached view of it (Backend.AI #2170, #2696)."""

        def shows() -> bool:
            try:
                with os.scandir(path.parent) as entries:
                    return any(e.name == path.name for e in entries) and path.is_dir()
            except OSError:
                return False

        deadline = time.monotonic() + self.visibility_timeout_seconds
        while not await to_thread.run_sync(shows):
            if time.monotonic() > deadline:
                raise BackendUnavailable(
                    f"qtree {path.name} was made but does not show at {path} after "
                    f"{self.visibility_timeout_seconds:g} s (is the ONTAP volume mounted "
                    "there?)"
                )
            await anyio.sleep(0.05)


TRASH_PREFIX = "sptrash_"
_TRASH_NAME = re.compile(r"^sptrash_([0-9a-f]{32})_[0-9a-f]{8}$")


class QtreeTrash:
    """``VFolderTrash``: a deleted vfolder's qtree renamed through the API to
    ``sptrash_<hex>_<random>``, still at the volume's root (NFS cannot move a qtree, nor
    any directory out of one, so the generic rename into ``.trash`` fails on ONTAP). Its
    quota rule goes with it (ONTAP renames a qtree's rules with it). Restoring renames it
    back; purging empties it over NFS (never following a symlink), then deletes its rule
    and the qtree through the API."""

    def __init__(self, qtrees: Qtrees) -> None:
        self.qtrees = qtrees
        self.volume = qtrees.volume
        self.api = qtrees.api
        self.root = qtrees.layout.root

    def holds(self, entry: TrashEntry) -> bool:
        return entry.name.startswith(TRASH_PREFIX)

    async def move_to_trash(self, vfolder_id: UUID) -> TrashEntry:
        name = qtree_name(vfolder_id)
        qtree = await self.qtrees.find(name)
        if qtree is None:
            raise VFolderDirectoryMissing(str(vfolder_id))
        trash_name = f"{TRASH_PREFIX}{name}_{secrets.token_hex(4)}"
        await self._rename(qtree, trash_name)
        return TrashEntry(name=trash_name, vfolder_id=vfolder_id)

    async def list_trash(self) -> list[TrashEntry]:
        volume_uuid, _ = await self.volume.ids()
        records = await self.api.records(
            "/api/storage/qtrees",
            {"volume.uuid": volume_uuid, "name": f"{TRASH_PREFIX}*", "fields": "id,name"},
        )
        entries = []
        for record in records:
            name = record.get("name")
            match = _TRASH_NAME.match(name) if isinstance(name, str) else None
            if match is not None:
                entries.append(TrashEntry(name=match.group(0), vfolder_id=UUID(match.group(1))))
        return sorted(entries, key=lambda e: e.name)

    async def restore_from_trash(self, entry: TrashEntry) -> None:
        qtree = await self.qtrees.find(entry.name)
        if qtree is None:
            raise BackendUnavailable(f"cannot restore {entry.name}: ONTAP has no such qtree")
        name = qtree_name(entry.vfolder_id)
        if await self.qtrees.find(name) is not None:
            raise BackendUnavailable(f"cannot restore {entry.name}: qtree {name} exists")
        await self._rename(qtree, name)

    async def purge(self, entry: TrashEntry) -> None:
        qtree = await self.qtrees.find(entry.name)
        if qtree is None:
            return  # purged already (another node got there first)
        path = self.root / entry.name
        if await to_thread.run_sync(path.is_dir):
            try:
                await to_thread.run_sync(_empty, path)
            except OSError as exc:
                raise BackendUnavailable(f"cannot empty {path}: {exc}") from exc
        volume_uuid, _ = await self.volume.ids()
        rules = await self.api.records(
            "/api/storage/quota/rules",
            {
                "volume.uuid": volume_uuid,
                "type": "tree",
                "qtree.name": entry.name,
                "fields": "uuid,qtree.name",
            },
        )
        for rule in rules:
            if dig(rule, "qtree", "name") == entry.name:
                with contextlib.suppress(BackendObjectNotFound):
                    await self.api.run(
                        "DELETE",
                        f"/api/storage/quota/rules/{_rule_uuid(rule)}",
                        what=f"removing the quota rule of qtree {entry.name}",
                    )
        qtree_id = require(qtree, "id", int, vendor=VENDOR)
        with contextlib.suppress(BackendObjectNotFound):
            await self.api.run(
                "DELETE",
                f"/api/storage/qtrees/{volume_uuid}/{qtree_id}",
                what=f"deleting qtree {entry.name}",
            )

    async def _rename(self, qtree: dict[str, Any], new_name: str) -> None:
        volume_uuid, _ = await self.volume.ids()
        qtree_id = require(qtree, "id", int, vendor=VENDOR)

        async def renamed() -> bool:
            return await self.qtrees.find(new_name) is not None

        await self.api.run(
            "PATCH",
            f"/api/storage/qtrees/{volume_uuid}/{qtree_id}",
            json={"name": new_name},
            what=f"renaming qtree {qtree.get('name')} to {new_name}",
            confirm=renamed,
        )
        await self.qtrees.wait_visible(self.root / new_name)


@dataclass(frozen=True, slots=True)
class _InQtreeTrashLayout(QtreeLayout):
    """The layout, but the trash a deleted directory goes through is inside its qtree."""

    trash_dir: Path = Path()

    @property
    def trash(self) -> Path:
        return self.trash_dir


class QtreeFileOps(PosixFileOps):
    """The POSIX file operations, but a directory deleted from a vfolder goes through a trash
    inside its qtree, and a clone's copy is made inside the new vfolder's qtree.

    A recursive delete renames the directory out of sight first, then removes it; the
    generic rename into the volume's ``.trash`` crosses qtrees, which ONTAP refuses (EXDEV).
    Here it goes into the qtree's hidden staging area instead (a rename within the qtree),
    and is removed from there at once.

    The generic ``receive_copy`` copies into the volume's ``.staging`` and renames the copy
    to the vfolder's path: that would first remove the qtree the vfolder was made as (an
    ``rmdir`` of a qtree's root deletes the qtree on ONTAP) and then put a plain directory
    of qtree 0 in its place, without its quota rule. Here, when the vfolder's qtree exists
    (the service always makes the vfolder before it copies into it), the copy goes to a
    private directory in the qtree's hidden staging area and its entries are renamed into
    the qtree's root (renames within one qtree); the qtree and its rule stay. Where nothing
    exists yet, the generic way is used."""

    async def delete(self, vfolder_id: UUID, path: RelativePath, *, recursive: bool) -> Usage:
        vfolder = self.sync.layout.vfolder_path(vfolder_id)
        if not recursive or not await to_thread.run_sync(vfolder.is_dir):
            return await super().delete(vfolder_id, path, recursive=recursive)

        def in_qtree() -> Usage:
            try:
                trash = self.sync.staging.prepare(vfolder_id)
            except FileNotFoundError:
                raise VFolderDirectoryMissing(str(vfolder_id)) from None
            except OSError as exc:
                raise BackendUnavailable(f"cannot prepare {vfolder}: {exc}") from exc
            layout = _InQtreeTrashLayout(self.sync.layout.root, trash_dir=trash)
            ops = PosixFileOpsSync(layout, staging=VFolderStaging(layout))
            return ops.delete(vfolder_id, path, recursive=True)

        return await to_thread.run_sync(in_qtree)

    async def receive_copy(
        self,
        source_root: Path,
        vfolder_id: UUID,
        progress: CloneProgress,
        *,
        skip: frozenset[str] = frozenset(),
    ) -> None:
        target = self.sync.layout.vfolder_path(vfolder_id)
        if not await to_thread.run_sync(target.is_dir):
            await super().receive_copy(source_root, vfolder_id, progress, skip=skip)
            return
        await to_thread.run_sync(lambda: _copy_into_qtree(source_root, target, progress, skip))

    async def discard_copy(self, vfolder_id: UUID) -> None:
        """The copy's entries removed; the (empty) qtree stays, as made."""
        target = self.sync.layout.vfolder_path(vfolder_id)
        if await to_thread.run_sync(target.is_dir):
            await to_thread.run_sync(_empty, target)
        else:
            await super().discard_copy(vfolder_id)


def _copy_into_qtree(
    source_root: Path, target: Path, progress: CloneProgress, skip: frozenset[str]
) -> None:
    try:
        _empty(target)
        staging = target / VFOLDER_STAGING_DIR
        staging.mkdir(mode=0o700)
        copy = staging / f"copy-{secrets.token_hex(4)}"
        copy_tree(source_root, copy, progress, skip=skip)
        for entry in sorted(copy.iterdir()):
            entry.rename(target / entry.name)
        target.chmod(stat.S_IMODE(copy.stat().st_mode))
        copy.rmdir()
        staging.rmdir()
    except OSError as exc:
        if exc.errno == errno.EDQUOT:
            raise BackendQuotaExceeded(f"copying into {target} exceeds its quota") from exc
        raise BackendUnavailable(f"cannot copy {source_root} into {target}: {exc}") from exc


def _empty(directory: Path) -> None:
    """Everything inside ``directory`` removed, never following a symlink; it stays."""
    with os.scandir(directory) as entries:
        children = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    for name, is_dir in children:
        if is_dir:
            _remove_tree(directory / name)
        else:
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()


def limit_argument(limit_bytes: int) -> int:
    """A hard limit as ONTAP keeps it: whole KiB, at least one (it counts in KiB)."""
    if limit_bytes < 0:
        raise ValueError(f"a quota limit cannot be negative: {limit_bytes}")
    return max(1, -(-limit_bytes // KIB)) * KIB


class QtreeQuota:
    """``QuotaCapable`` and ``FastUsageCapable``: the qtree's tree quota rule and report."""

    def __init__(self, layout: QtreeLayout, volume: OntapVolume) -> None:
        self.layout = layout
        self.volume = volume
        self.api = volume.api

    async def vfolder_created(self, vfolder_id: UUID) -> None:
        # A rule without a limit only tracks: ONTAP then reports the qtree's usage.
        if await self._rule(vfolder_id) is None:
            await self._create_rule(vfolder_id, None)
        await self.ensure_quotas_on()

    async def set_quota(self, vfolder_id: UUID, *, limit_bytes: int | None) -> None:
        await self._existing(vfolder_id)
        rule = await self._rule(vfolder_id)
        if limit_bytes is not None:
            limit = limit_argument(limit_bytes)
            if rule is None:
                await self._create_rule(vfolder_id, limit)
            else:
                await self.api.run(
                    "PATCH",
                    f"/api/storage/quota/rules/{_rule_uuid(rule)}",
                    json={"space": {"hard_limit": limit}},
                    what=f"setting the quota of qtree {qtree_name(vfolder_id)}",
                    idempotent=True,  # the same absolute value twice is one change
                )
        elif rule is None:
            await self._create_rule(vfolder_id, None)
        elif _hard_limit(rule) is not None:
            # No limit: a tracking rule in its place, so the usage is still reported.
            await self._delete_rule(rule, vfolder_id)
            await self._create_rule(vfolder_id, None)
        await self.ensure_quotas_on()

    async def get_quota(self, vfolder_id: UUID) -> int | None:
        await self._existing(vfolder_id)
        rule = await self._rule(vfolder_id)
        return None if rule is None else _hard_limit(rule)

    async def usage_bytes(self, vfolder_id: UUID) -> int:
        await self._existing(vfolder_id)
        volume_uuid, _ = await self.volume.ids()
        name = qtree_name(vfolder_id)
        records = await self.api.records(
            "/api/storage/quota/reports",
            {"type": "tree", "volume.uuid": volume_uuid, "qtree.name": name, "fields": "space"},
        )
        records = [r for r in records if dig(r, "qtree", "name") in (name, None)]
        if not records:
            # 0 would be a lie the quota ledger believes; the caller can measure instead.
            raise BackendUnavailable(
                f"ONTAP has no quota report for qtree {name} (quotas off or initializing "
                "on the volume, or no rule on the qtree)"
            )
        used: int = require(records[0], "space.used.total", int, vendor=VENDOR)
        if used < 0:
            raise BackendApiError(f"{VENDOR} API: malformed answer: space.used.total is {used}")
        return used

    async def ensure_quotas_on(self) -> None:
        """Quotas turned on on the volume if they are off: rules do nothing until then.
        Asked every time (an administrator may turn them off)."""
        volume_uuid, _ = await self.volume.ids()
        body = await self.api.get(
            f"/api/storage/volumes/{volume_uuid}", {"fields": "quota.enabled,quota.state"}
        )
        if require(body, "quota.enabled", bool, vendor=VENDOR):
            return
        try:
            await self.api.run(
                "PATCH",
                f"/api/storage/volumes/{volume_uuid}",
                json={"quota": {"enabled": True}},
                what=f"turning quotas on on volume {self.volume.name}",
                idempotent=True,
            )
        except JobFailed as exc:
            if exc.vendor_code != QUOTA_ALREADY_ON:
                raise

    async def _existing(self, vfolder_id: UUID) -> None:
        path = self.layout.vfolder_path(vfolder_id)
        if not await to_thread.run_sync(path.is_dir):
            raise VFolderDirectoryMissing(str(vfolder_id))

    async def _rule(self, vfolder_id: UUID) -> dict[str, Any] | None:
        volume_uuid, _ = await self.volume.ids()
        name = qtree_name(vfolder_id)
        records = await self.api.records(
            "/api/storage/quota/rules",
            {
                "volume.uuid": volume_uuid,
                "type": "tree",
                "qtree.name": name,
                "fields": "uuid,qtree.name,space",
            },
        )
        return next((r for r in records if dig(r, "qtree", "name") == name), None)

    async def _create_rule(self, vfolder_id: UUID, limit: int | None) -> None:
        volume_uuid, svm_uuid = await self.volume.ids()
        name = qtree_name(vfolder_id)
        body: dict[str, Any] = {
            "svm": {"uuid": svm_uuid},
            "volume": {"uuid": volume_uuid},
            "type": "tree",
            "qtree": {"name": name},
        }
        if limit is not None:
            body["space"] = {"hard_limit": limit}

        async def made() -> bool:
            return await self._rule(vfolder_id) is not None

        await self.api.run(
            "POST",
            "/api/storage/quota/rules",
            json=body,
            what=f"creating the quota rule of qtree {name}",
            confirm=made,
        )

    async def _delete_rule(self, rule: dict[str, Any], vfolder_id: UUID) -> None:
        with contextlib.suppress(BackendObjectNotFound):  # gone already
            await self.api.run(
                "DELETE",
                f"/api/storage/quota/rules/{_rule_uuid(rule)}",
                what=f"removing the quota rule of qtree {qtree_name(vfolder_id)}",
            )


def _rule_uuid(rule: dict[str, Any]) -> str:
    uuid: str = require(rule, "uuid", str, vendor=VENDOR)
    return uuid


def _hard_limit(rule: dict[str, Any]) -> int | None:
    """The rule's hard limit; absent (or 0, or -1 on some releases) means none."""
    space = rule.get("space")
    if space is None:
        return None
    if not isinstance(space, dict):
        raise BackendApiError(f"{VENDOR} API: malformed answer: space is not an object")
    if space.get("hard_limit") is None:
        return None
    limit: int = require(rule, "space.hard_limit", int, vendor=VENDOR)
    return limit if limit > 0 else None


class VolumeSnapshots:
    """``SnapshotCapable`` over the volume's snapshots (see the module docstring)."""

    def __init__(self, layout: QtreeLayout, volume: OntapVolume) -> None:
        self.layout = layout
        self.volume = volume
        self.api = volume.api

    @staticmethod
    def prefix(vfolder_id: UUID) -> str:
        return f"{SNAPSHOT_PREFIX}{vfolder_id.hex}-"

    def full_name(self, vfolder_id: UUID, name: str) -> str:
        if not SNAPSHOT_NAME.match(name):
            raise InvalidSnapshotName(f"{name!r} is not a valid snapshot name")
        return self.prefix(vfolder_id) + name

    def snapshot_path(self, vfolder_id: UUID, name: str) -> Path:
        """The vfolder's qtree as the snapshot holds it, through the NFS mount."""
        full = self.full_name(vfolder_id, name)
        return self.layout.root / SNAPSHOT_DIR / full / qtree_name(vfolder_id)

    def snapshot_files(self, vfolder_id: UUID, name: str) -> PosixFileOps:
        path = self.snapshot_path(vfolder_id, name)
        layout = SnapshotLayout(root=path.parent, snapshot=path)
        # Uploads being staged when it was taken stay out of sight, as in the vfolder.
        return PosixFileOps(layout, staging=VFolderStaging(layout))

    async def _records(self, pattern: str) -> list[dict[str, Any]]:
        volume_uuid, _ = await self.volume.ids()
        return await self.api.records(
            f"/api/storage/volumes/{volume_uuid}/snapshots",
            {"name": pattern, "fields": "uuid,name,create_time,size"},
        )

    async def _find(self, full: str) -> dict[str, Any] | None:
        return next((r for r in await self._records(full) if r.get("name") == full), None)

    async def create_snapshot(self, vfolder_id: UUID, *, name: str) -> SnapshotInfo:
        full = self.full_name(vfolder_id, name)
        path = self.layout.vfolder_path(vfolder_id)
        if not await to_thread.run_sync(path.is_dir):
            raise VFolderDirectoryMissing(str(vfolder_id))
        volume_uuid, _ = await self.volume.ids()

        async def made() -> bool:
            return await self._find(full) is not None

        await self.api.run(
            "POST",
            f"/api/storage/volumes/{volume_uuid}/snapshots",
            json={"name": full, "comment": f"storage-proxy vfolder {vfolder_id}"},
            what=f"creating snapshot {full}",
            confirm=made,
        )
        record = await self._find(full)
        if record is None:
            raise BackendApiError(f"snapshot {full} was made but ONTAP does not list it")
        return _snapshot_info(record, name)

    async def list_snapshots(self, vfolder_id: UUID) -> list[SnapshotInfo]:
        prefix = self.prefix(vfolder_id)
        infos = []
        for record in await self._records(prefix + "*"):
            full = record.get("name")
            if isinstance(full, str) and full.startswith(prefix):
                infos.append(_snapshot_info(record, full[len(prefix) :]))
        return sorted(infos, key=lambda s: (s.created_at, s.name))

    async def delete_snapshot(self, vfolder_id: UUID, *, name: str) -> None:
        full = self.full_name(vfolder_id, name)
        record = await self._find(full)
        if record is None:
            raise SnapshotNotFound(f"no snapshot {name!r}")
        volume_uuid, _ = await self.volume.ids()
        snapshot_uuid = require(record, "uuid", str, vendor=VENDOR)

        async def gone() -> bool:
            return await self._find(full) is None

        try:
            await self.api.run(
                "DELETE",
                f"/api/storage/volumes/{volume_uuid}/snapshots/{snapshot_uuid}",
                what=f"deleting snapshot {full}",
                confirm=gone,
            )
        except BackendObjectNotFound:
            raise SnapshotNotFound(f"no snapshot {name!r}") from None

    async def restore_snapshot(self, vfolder_id: UUID, *, name: str) -> None:
        """The qtree's content replaced by the snapshot's copy of it. A qtree cannot be
        renamed over NFS, nor anything moved out of it, so the current content is first
        moved aside inside the qtree's hidden staging area and removed, then the snapshot's
        tree is copied in (a copy cut short is finished by restoring again: the snapshot
        keeps everything). The qtree, and so its quota rule, stay."""
        full = self.full_name(vfolder_id, name)
        if await self._find(full) is None:
            raise SnapshotNotFound(f"no snapshot {name!r}")
        source = self.snapshot_path(vfolder_id, name)
        target = self.layout.vfolder_path(vfolder_id)
        if not await to_thread.run_sync(target.is_dir):
            raise VFolderDirectoryMissing(str(vfolder_id))
        if not await to_thread.run_sync(source.is_dir):
            raise BackendUnavailable(
                f"snapshot {full} is not readable at {source} (is the volume's snapshot "
                "directory reachable over NFS?)"
            )
        await to_thread.run_sync(_replace_content, source, target)


def _snapshot_info(record: dict[str, Any], name: str) -> SnapshotInfo:
    created = require(record, "create_time", str, vendor=VENDOR)
    try:
        created_at = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BackendApiError(
            f"{VENDOR} API: malformed answer: create_time {created!r} is not a time"
        ) from None
    size = record.get("size")
    return SnapshotInfo(
        name=name,
        created_at=created_at,
        size_bytes=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


def _replace_content(source: Path, target: Path) -> None:
    staging = target / VFOLDER_STAGING_DIR
    try:
        staging.mkdir(mode=0o700, exist_ok=True)
        retired = staging / f"restore-{secrets.token_hex(4)}"
        retired.mkdir(mode=0o700)
        with os.scandir(target) as entries:
            names = [e.name for e in entries if e.name != VFOLDER_STAGING_DIR]
        for name in names:
            (target / name).rename(retired / name)
        _remove_tree(retired)
        _copy_tree(source, target, top=True)
    except OSError as exc:
        if exc.errno == errno.EDQUOT:
            raise BackendQuotaExceeded(f"restoring {source} exceeds the qtree's quota") from exc
        raise BackendUnavailable(f"cannot restore {target} from {source}: {exc}") from exc


def _copy_tree(source: Path, target: Path, *, top: bool = False) -> None:
    """``source``'s entries into the directory ``target``, symlinks copied as links (never
    followed), special files left out, the proxy's staging area of the snapshot too."""
    with os.scandir(source) as entries:
        for entry in entries:
            if top and entry.name == VFOLDER_STAGING_DIR:
                continue
            st = entry.stat(follow_symlinks=False)
            destination = target / entry.name
            if stat.S_ISDIR(st.st_mode):
                destination.mkdir(mode=stat.S_IMODE(st.st_mode) | 0o700)
                _copy_tree(Path(entry.path), destination)
                destination.chmod(stat.S_IMODE(st.st_mode))
            elif stat.S_ISREG(st.st_mode):
                shutil.copy2(entry.path, destination, follow_symlinks=False)
            elif stat.S_ISLNK(st.st_mode):
                destination.symlink_to(Path(entry.path).readlink())


def _remove_tree(path: Path) -> None:
    def on_error(_func: object, failed: str, exc: BaseException) -> None:
        if isinstance(exc, FileNotFoundError):
            return
        raise exc

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=on_error)
    else:
        shutil.rmtree(path, onerror=lambda f, p, info: on_error(f, p, info[1]))


__all__ = [
    "QUOTA_ALREADY_ON",
    "SNAPSHOT_DIR",
    "OntapVolume",
    "QtreeFileOps",
    "QtreeLayout",
    "QtreeQuota",
    "QtreeTrash",
    "Qtrees",
    "VolumeSnapshots",
    "limit_argument",
    "qtree_name",
]
