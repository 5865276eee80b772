"""What a change will do to a vfolder's usage, foreseen from the disk under the vfolder's row
lock, so the ledger can refuse it before anything is written."""

from __future__ import annotations

import uuid

from drivers.base import VFolderFiles
from drivers.errors import PathNotFound
from drivers.paths import RelativePath
from drivers.types import EntryType, Usage


async def foreseen_store(
    files: VFolderFiles,
    vfolder_id: uuid.UUID,
    rel: RelativePath,
    size: int,
    *,
    replace: bool,
    parents: bool,
) -> Usage:
    """What storing ``size`` bytes at ``rel`` will change in the ledger (only a write through
    a mount can make it differ)."""
    try:
        existing = await files.stat(vfolder_id, rel)
    except PathNotFound:
        made = await files.missing_entries(vfolder_id, rel.parent) if parents else 0
        return Usage(size, 1 + made)
    if replace and existing.type is EntryType.FILE:
        return Usage(size - existing.size, 0)
    return Usage(size, 0)  # refused by the commit (it exists), or replacing a non-file
