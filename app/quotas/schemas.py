from __future__ import annotations

import enum
import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from app.quotas.models import ScopeType


class QuotaLimits(BaseModel):
    limit_bytes: int | None = Field(
        default=None, ge=0, le=2**62, description="Bytes of regular files; null: no limit."
    )
    limit_files: int | None = Field(
        default=None, ge=0, le=2**62, description="Entries (files, directories, symlinks)."
    )


class EnforcedBy(enum.StrEnum):
    BACKEND = "backend"
    PROXY = "proxy"


class QuotaView(BaseModel):
    scope_type: ScopeType
    scope_id: str
    volume: str
    limit_bytes: int | None
    limit_files: int | None
    used_bytes: int
    used_files: int
    reserved_bytes: int = Field(description="Held by writes in progress.")
    reserved_files: int
    free_bytes: int | None = Field(description="limit - used - reserved; null without a limit.")
    usage_percent: float | None = Field(description="100 * used / limit; null without a limit.")
    alert_level_percent: int = Field(description="Highest threshold crossed: 0, 80 or 95.")
    last_reconciled_at: datetime | None
    enforced_by: EnforcedBy = Field(
        description="Who refuses writes beyond `limit_bytes`. `backend`: the filesystem too "
        "(a btrfs qgroup, an XFS project quota on the vfolder), so writes through a mount are "
        "refused as well; `proxy`: only writes through this API are (a container writing "
        "through its mount can exceed the limit; scans find what it wrote). `limit_files` "
        "is always the proxy's."
    )


class QuotaList(BaseModel):
    items: list[QuotaView]


class LedgerCorrection(BaseModel):
    vfolder_id: uuid.UUID
    bytes_before: int
    bytes_after: int
    files_before: int
    files_after: int


class ReconcileReport(BaseModel):
    volume: str
    vfolders_scanned: int
    corrections: list[LedgerCorrection] = Field(
        description="Vfolders whose ledger differed from the disk, now corrected."
    )
    drift_bytes: int = Field(description="Sum of the absolute byte corrections.")
    orphan_directories: list[uuid.UUID] = Field(
        description="Vfolder directories on the volume with no metadata row (left in place)."
    )
    missing_directories: list[uuid.UUID] = Field(
        description="Live vfolders whose directory is gone (reported, not deleted)."
    )
    skipped_busy: list[uuid.UUID] = Field(
        description="Vfolders that kept changing during every scan attempt; retried later."
    )
