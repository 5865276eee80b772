"""Where a driver stages uploads: a strategy the driver picks, so that committing an upload
is always one rename and never crosses a quota boundary.

- ``VolumeStaging``: one private ``.staging`` directory at the volume root, beside the
  vfolders (POSIX, btrfs). Fine where the volume has no boundary a rename cannot cross.
- ``VFolderStaging``: a hidden ``.sp-staging`` directory inside each vfolder, so the staged
  file is already inside the vfolder's quota tree (an XFS project, a directory quota) and
  its final rename stays within it. Its bytes count against the vfolder's quota while they
  are written, which is what a quota that the kernel enforces should do. The directory is
  reserved: file operations never list, walk, measure or copy it, and refuse to name it.

Both keep the volume's ``.staging`` for what is not an upload (clone copies, restores,
writability probes). ``VFolderStaging`` still finds, finishes and sweeps the uploads a release
before it staged there (``locations``): a resumable upload begun before an upgrade goes on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from uuid import UUID

from drivers.layout import VFolderLayout

VFOLDER_STAGING_DIR = ".sp-staging"
# A staging key names one staging file across a volume: ``<name>`` in the volume area,
# ``<vfolder hex>/<name>`` in a vfolder's own area.
KEY_SEPARATOR = "/"


class StagingPlacement(Protocol):
    """Contract: ``directory`` is where an upload to ``vfolder_id`` is staged, on the same
    filesystem and inside the same quota boundary as the vfolder's files; ``reserved`` are
    the names at a vfolder's root that belong to the proxy, never to the user."""

    @property
    def reserved(self) -> frozenset[str]: ...

    def directory(self, vfolder_id: UUID) -> Path: ...

    def locations(self, vfolder_id: UUID) -> tuple[Path, ...]:
        """Where an existing staging file of ``vfolder_id`` may be, ``directory`` first."""
        ...

    def prepare(self, vfolder_id: UUID) -> Path:
        """The staging directory of ``vfolder_id``, made if missing (blocking)."""
        ...

    def key(self, vfolder_id: UUID, name: str) -> str: ...

    def locate(self, key: str) -> tuple[Path, str] | None:
        """The directory and file name a key stands for; None for a malformed key."""
        ...

    def areas(self) -> Iterator[tuple[Path, str]]:
        """Every staging directory of the volume with the key prefix of its files
        (blocking: may walk the vfolders)."""
        ...


@dataclass(frozen=True, slots=True)
class VolumeStaging:
    layout: VFolderLayout

    @property
    def reserved(self) -> frozenset[str]:
        return frozenset()

    def directory(self, vfolder_id: UUID) -> Path:
        return self.layout.staging

    def locations(self, vfolder_id: UUID) -> tuple[Path, ...]:
        return (self.layout.staging,)

    def prepare(self, vfolder_id: UUID) -> Path:
        return self.layout.staging  # made with the volume

    def key(self, vfolder_id: UUID, name: str) -> str:
        return name

    def locate(self, key: str) -> tuple[Path, str] | None:
        if not _single_name(key):
            return None
        return self.layout.staging, key

    def areas(self) -> Iterator[tuple[Path, str]]:
        yield self.layout.staging, ""


@dataclass(frozen=True, slots=True)
class VFolderStaging:
    layout: VFolderLayout

    @property
    def reserved(self) -> frozenset[str]:
        return frozenset({VFOLDER_STAGING_DIR})

    def directory(self, vfolder_id: UUID) -> Path:
        return self.layout.vfolder_path(vfolder_id) / VFOLDER_STAGING_DIR

    def locations(self, vfolder_id: UUID) -> tuple[Path, ...]:
        # The volume area: uploads staged before the volume's driver staged per vfolder.
        return (self.directory(vfolder_id), self.layout.staging)

    def prepare(self, vfolder_id: UUID) -> Path:
        directory = self.directory(vfolder_id)
        # Private: a container that mounts the vfolder sees the name, not the uploads.
        # A missing vfolder stays missing (no parents): the caller reports it.
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            if directory.is_symlink() or not directory.is_dir():
                # Planted by a container that mounts the vfolder: never staged through.
                raise NotADirectoryError(f"{directory} is not a directory") from None
        return directory

    def key(self, vfolder_id: UUID, name: str) -> str:
        return f"{vfolder_id.hex}{KEY_SEPARATOR}{name}"

    def locate(self, key: str) -> tuple[Path, str] | None:
        hex_id, separator, name = key.partition(KEY_SEPARATOR)
        if not separator:
            return (self.layout.staging, key) if _single_name(key) else None
        if not _single_name(name):
            return None
        try:
            vfolder_id = UUID(hex=hex_id)
        except ValueError:
            return None
        return self.directory(vfolder_id), name

    def areas(self) -> Iterator[tuple[Path, str]]:
        yield self.layout.staging, ""  # what a release staging per volume left
        for vfolder_id in self.layout.vfolder_ids():
            directory = self.directory(vfolder_id)
            if directory.is_dir() and not directory.is_symlink():
                yield directory, f"{vfolder_id.hex}{KEY_SEPARATOR}"


def _single_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and os.sep not in name and "\0" not in name
