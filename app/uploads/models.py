"""Resumable (tus) upload records: enough for any node sharing the database and the volume to
continue an upload another node started."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, Text, Uuid, false
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.types import UTCDateTime, utcnow

# A tus upload's staging file is named after it (the driver keeps the same prefix apart).
TUS_STAGING_PREFIX = "tus-"


class UploadStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class UploadRow(Base):
    __tablename__ = "uploads"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    vfolder_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("vfolders.id", ondelete="CASCADE"), index=True
    )
    owner: Mapped[str] = mapped_column(String(300))  # "<principal kind>:<id>"
    destination: Mapped[str] = mapped_column(Text)  # relative path; "" for a partial upload
    overwrite: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the destination is taken at completion: stored under "name (1).ext"… instead of
    # refused (STORAGE_UPLOAD_COLLISION=rename, decided at creation). `destination` then
    # becomes where it landed.
    rename_on_collision: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    length: Mapped[int | None] = mapped_column(BigInteger, default=None)  # None: deferred
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    metadata_header: Mapped[str] = mapped_column(Text, default="")  # Upload-Metadata, verbatim
    status: Mapped[str] = mapped_column(String(16), default=UploadStatus.ACTIVE.value)
    # Concatenation, as its Upload-Concat header: "partial" (a part, never placed itself) or
    # "final;<url> <url>…" (made of those parts).
    concat: Mapped[str | None] = mapped_column(Text, default=None)
    # One writer at a time (app/uploads/locks.py): the fencing token of the latest lock holder,
    # and the lease itself when the database is the lock (no Redis configured).
    lock_fence: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    lock_token: Mapped[str | None] = mapped_column(String(64), default=None)
    lock_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_uploads_status_expires", "status", "expires_at"),)

    @property
    def expirable(self) -> bool:
        """Still holding a staging file: unfinished, or a finished part awaiting its final."""
        return self.status == UploadStatus.ACTIVE.value or (
            self.status == UploadStatus.COMPLETED.value and self.concat == "partial"
        )

    @property
    def staging_name(self) -> str:
        return f"{TUS_STAGING_PREFIX}{self.id.hex}"


def upload_id_of_staging(name: str) -> uuid.UUID | None:
    """The upload a staging file name belongs to; None for any other staging file."""
    if not name.startswith(TUS_STAGING_PREFIX):
        return None
    try:
        return uuid.UUID(hex=name.removeprefix(TUS_STAGING_PREFIX))
    except ValueError:
        return None
