"""The single access check for vfolders. Every vfolder operation passes through
``authorize``; sharing grants (RO / RW / RWD) slot in here without touching callers.

A vfolder the caller may not see answers exactly like one that does not exist, so existence
never leaks."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from uuid import UUID

from app.auth.principal import Principal
from app.errors import Forbidden, VFolderNotFound


class VFolderOperation(enum.StrEnum):
    READ = "read"  # metadata, listing, stat, download
    MOUNT = "mount"
    RENAME = "rename"
    DELETE = "delete"  # the vfolder itself
    WRITE_FILES = "write-files"  # upload, mkdir, move
    DELETE_FILES = "delete-files"


@dataclass(frozen=True, slots=True)
class Owner:
    type: str
    id: str


@dataclass(frozen=True, slots=True)
class VisibilityScope:
    """What a non-admin may see: vfolders owned by the user or by one of their groups."""

    user_id: str | None
    group_ids: frozenset[str]


def is_owner(principal: Principal, owner: Owner) -> bool:
    if owner.type == "user":
        return principal.user_id == owner.id
    return owner.id in principal.groups


def authorize(
    principal: Principal, *, vfolder_id: UUID, owner: Owner, operation: VFolderOperation
) -> None:
    """Raises ``VFolderNotFound`` unless ``principal`` may perform ``operation``."""
    if principal.is_admin or is_owner(principal, owner):
        return
    raise VFolderNotFound(f"vfolder {vfolder_id} not found", vfolder_id=str(vfolder_id))


def authorize_create(principal: Principal, owner: Owner) -> None:
    """Users create vfolders for themselves or for a group they belong to."""
    if principal.is_admin or is_owner(principal, owner):
        return
    raise Forbidden(
        f"cannot create a vfolder owned by {owner.type} {owner.id!r}",
        owner_type=owner.type,
        owner_id=owner.id,
    )


def visibility_scope(principal: Principal) -> VisibilityScope | None:
    """None means everything is visible."""
    if principal.is_admin:
        return None
    return VisibilityScope(user_id=principal.user_id, group_ids=principal.groups)
