"""From the Manager's ``(volume, vfid)`` to our vfolder: the uuid names it; the volume and the
quota scope must agree with what we recorded, or it is not found (a vfid of another scope never
reaches a folder)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from app.backendai.identity import VFolderId
from app.errors import VFolderNotFound
from app.permissions.policy import AccessRules
from app.vfolders.models import VFolderStatus
from app.vfolders.reader import VFolderReader
from app.vfolders.schemas import VFolder


def belongs(vfolder: VFolder, volume: str, vfid: VFolderId) -> bool:
    scope = vfid.quota_scope
    return (
        vfolder.volume == volume
        and vfolder.owner_type == scope.owner_type
        and vfolder.owner_id == scope.owner_id
    )


async def find_vfolder(
    session: AsyncSession, reader: VFolderReader, volume: str, vfid: VFolderId
) -> VFolder:
    """The live or cloning vfolder; ``VFolderNotFound`` when the vfid names none here (a
    deleted one included: to the Manager it is gone)."""
    vfolder, _rules = await reader.load(session, vfid.folder_id)
    return _here(vfolder, volume, vfid)


async def read_vfolder(
    sessions: Callable[[], AsyncSession], reader: VFolderReader, volume: str, vfid: VFolderId
) -> VFolder:
    """``find_vfolder`` outside any transaction: no session unless the cache misses."""
    vfolder, _rules = await read_vfolder_entry(sessions, reader, volume, vfid)
    return vfolder


async def read_vfolder_entry(
    sessions: Callable[[], AsyncSession], reader: VFolderReader, volume: str, vfid: VFolderId
) -> tuple[VFolder, AccessRules]:
    """``read_vfolder``, with the access rules read along (for ``VFolderReader.reusing``)."""
    vfolder, rules = await reader.read(sessions, vfid.folder_id)
    return _here(vfolder, volume, vfid), rules


def _here(vfolder: VFolder, volume: str, vfid: VFolderId) -> VFolder:
    if vfolder.status == VFolderStatus.DELETED or not belongs(vfolder, volume, vfid):
        raise VFolderNotFound(
            f"vfolder {vfid} not found on volume {volume!r}", vfid=str(vfid), volume=volume
        )
    return vfolder
