from __future__ import annotations

import enum
import unicodedata
from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.config import VOLUME_NAME_PATTERN
from app.permissions.models import Mode
from app.vfolders.models import OwnerType, VFolderStatus

MAX_NAME_BYTES = 255


def _check_vfolder_name(name: str) -> str:
    if not name:
        raise ValueError("name must not be empty")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(f"name must be at most {MAX_NAME_BYTES} bytes in UTF-8")
    if "/" in name or "\\" in name:
        raise ValueError("name must not contain '/' or '\\'")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in name):
        raise ValueError("name must not contain NUL, control or invisible format characters")
    if name in {".", ".."}:
        raise ValueError("name must not be '.' or '..'")
    if name != name.strip():
        raise ValueError("name must not start or end with whitespace")
    return name


VFolderName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NAME_BYTES),
    AfterValidator(_check_vfolder_name),
    Field(
        description="Unique per owner among live vfolders; 1-255 UTF-8 bytes, "
        "no '/', '\\\\', control characters, leading or trailing spaces.",
        examples=["datasets"],
    ),
]
VolumeName = Annotated[str, StringConstraints(pattern=VOLUME_NAME_PATTERN)]
OwnerId = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class VFolderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: UUID | None = Field(
        default=None,
        description="Caller-chosen id, for service keys only (a Manager keeps its own ids; "
        "a user who sends one gets 403 `/problems/vfolder-id-not-allowed`). Repeating a create "
        "with the same id and body returns the existing vfolder, with the caller's mode.",
    )
    name: VFolderName
    volume: VolumeName = Field(examples=["local"])
    owner_type: OwnerType | None = Field(
        default=None, description="Defaults to `user` (the caller) for user tokens."
    )
    owner_id: OwnerId | None = Field(
        default=None,
        description="Required for service keys; users may name themselves or one of their groups.",
    )


class VFolderUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: VFolderName | None = None
    group_mode: Mode | None = Field(
        default=None, description="What members of the owning group may do (group vfolders)."
    )


class VFolder(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    volume: str
    owner_type: OwnerType
    owner_id: str
    status: VFolderStatus
    group_mode: Mode = Field(description="What members of the owning group may do.")
    quota_bytes: int | None
    cloned_from: UUID | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


class VFolderView(VFolder):
    """A vfolder as one caller sees it."""

    mode: Mode = Field(description="The caller's effective mode on this vfolder.")


class VFolderList(BaseModel):
    items: list[VFolderView]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class VFolderMount(BaseModel):
    """What an Agent needs to bind-mount the vfolder into a container."""

    vfolder_id: UUID
    volume: str
    backend: str
    host_path: str = Field(description="Absolute path on the storage host / Agent mount.")
    mount_options: list[str]
    read_only: bool = Field(description="Mount read-only: the caller's mode is `ro`.")
    extra: dict[str, str] = Field(default_factory=dict)


class UsageSource(enum.StrEnum):
    NATIVE = "native"
    SCAN = "scan"
    LEDGER = "ledger"


class VFolderUsage(BaseModel):
    """How much the vfolder holds, where the figure comes from, and as of when.

    - `native`: the backend's own accounting, read now (btrfs qgroups, XFS project quotas):
      what the filesystem charges against the vfolder's limit — allocated extents and
      metadata, which can differ from the sum of file sizes. Writes through a mount count
      at once. `file_count` is the ledger's (see `scan`).
    - `scan`: the usage ledger, exact for every change made through this API, and checked
      against the disk by a scan that started at `as_of`: writes made through a mount before
      then are counted, later ones are found by the next scan
      (`STORAGE_USAGE_SCAN_INTERVAL_SECONDS`) or by `POST /v1/vfolders/{id}/reconcile`.
    - `ledger`: the usage ledger, not checked against the disk yet: changes made through
      this API only; `as_of` is the moment it was read."""

    vfolder_id: UUID
    used_bytes: int = Field(
        description="`native`: bytes the backend accounts to the vfolder; otherwise bytes in "
        "regular files."
    )
    file_count: int = Field(description="Entries of every kind: files, directories, symlinks.")
    source: UsageSource = Field(description="Where `used_bytes` comes from.")
    as_of: datetime = Field(description="When `used_bytes` was true of the disk.")
    scanned_at: datetime | None = Field(
        description="When a scan last checked the ledger (and so `file_count`) against the "
        "disk; null: never."
    )
