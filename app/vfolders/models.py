"""The ``vfolders`` table."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.types import UTCDateTime, utcnow


class OwnerType(enum.StrEnum):
    USER = "user"
    GROUP = "group"


class VFolderStatus(enum.StrEnum):
    READY = "ready"
    CLONING = "cloning"  # its content is being copied by a task; not usable until ready
    DELETED = "deleted"


LIVE_CONDITION = text("status <> 'deleted'")


class VFolderRow(Base):
    __tablename__ = "vfolders"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    volume: Mapped[str] = mapped_column(String(64), index=True)
    owner_type: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=VFolderStatus.READY.value)
    # A copy of the vfolder scope's byte limit (app/quotas), for listings.
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # What members of the owning group may do (group vfolders only): ro, rw or rwd.
    group_mode: Mapped[str] = mapped_column(String(8), default="rw", server_default="rw")
    # The usage ledger, kept exact by every write through the API (bytes of regular files;
    # entries of any kind: files, directories, symlinks).
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    file_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cloned_from: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    __table_args__ = (
        # A name is unique per owner among live vfolders only: deleting frees the name at once.
        Index(
            "uq_vfolders_owner_live_name",
            "owner_type",
            "owner_id",
            "name",
            unique=True,
            sqlite_where=LIVE_CONDITION,
            postgresql_where=LIVE_CONDITION,
        ),
        Index("ix_vfolders_owner", "owner_type", "owner_id"),
        Index("ix_vfolders_owner_volume", "owner_type", "owner_id", "volume"),
        Index("ix_vfolders_name_id", "name", "id"),
    )
