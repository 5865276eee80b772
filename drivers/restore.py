"""A whole vfolder put back to a snapshot's tree, in place: for backends whose quota (or
quota realm) is bound to the vfolder's directory, so the directory itself must stay.

The snapshot is copied into ``area`` (inside the vfolder's quota boundary: its hidden
staging), the current entries are moved aside there and the copies moved in, by renames
within the vfolder; a rename that fails undoes what went before. The replaced entries go to
the volume's trash, or are removed where the storage refuses a rename out of the quota
directory (EXDEV). While it runs, the vfolder holds both copies: its quota must have room."""

from __future__ import annotations

import contextlib
import errno
import secrets
from pathlib import Path
from uuid import UUID

from drivers.clone import copy_tree, remove_tree
from drivers.errors import BackendQuotaExceeded, BackendUnavailable
from drivers.layout import VFolderLayout
from drivers.types import CloneProgress


def restore_in_place(
    layout: VFolderLayout,
    vfolder_id: UUID,
    source: Path,
    area: Path,
    *,
    reserved: frozenset[str],
) -> None:
    """The vfolder's entries replaced by a copy of ``source``. Names in ``reserved`` (the
    vfolder's staging, a snapshot directory) are neither copied nor replaced."""
    current = layout.vfolder_path(vfolder_id)
    token = secrets.token_hex(4)
    fresh, retired = area / f"restore-{token}", area / f"retired-{token}"
    try:
        copy_tree(source, fresh, CloneProgress(), skip=reserved)
    except OSError as exc:
        remove_tree(fresh)  # nothing of the vfolder was touched
        if exc.errno in (errno.EDQUOT, errno.ENOSPC):
            raise BackendQuotaExceeded(
                "the restore needs room for a copy of the snapshot beside the current "
                f"files: {exc.strerror}"
            ) from exc
        raise BackendUnavailable(f"cannot copy the snapshot: {exc}") from exc
    _swap(current, fresh, retired, reserved)
    with contextlib.suppress(FileNotFoundError):
        fresh.rmdir()
    try:
        retired.rename(layout.trash / layout.new_file_trash_name(vfolder_id))
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise BackendUnavailable(f"cannot move the replaced files away: {exc}") from exc
        remove_tree(retired)


def _swap(current: Path, fresh: Path, retired: Path, reserved: frozenset[str]) -> None:
    """The current entries (reserved names left alone) into ``retired``, then ``fresh``'s
    into the vfolder; undone as far as it went when a rename fails."""
    moved_out: list[str] = []
    moved_in: list[str] = []
    try:
        retired.mkdir(mode=0o700)
        for entry in sorted(current.iterdir()):
            if entry.name not in reserved:
                entry.rename(retired / entry.name)
                moved_out.append(entry.name)
        for entry in sorted(fresh.iterdir()):
            entry.rename(current / entry.name)
            moved_in.append(entry.name)
    except OSError as exc:
        with contextlib.suppress(OSError):
            for name in moved_in:
                (current / name).rename(fresh / name)
            for name in moved_out:
                (retired / name).rename(current / name)
        remove_tree(fresh)
        with contextlib.suppress(OSError):
            retired.rmdir()
        raise BackendUnavailable(f"cannot put the snapshot's files in place: {exc}") from exc
