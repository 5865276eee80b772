"""Quota limits per scope, and the reservations that writes hold against them."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, SmallInteger, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.types import UTCDateTime, utcnow


class ScopeType(enum.StrEnum):
    VFOLDER = "vfolder"
    USER = "user"  # every vfolder the user owns on one volume
    GROUP = "group"  # every vfolder the group owns on one volume


class QuotaRow(Base):
    """A limit on one scope. A scope without a row has no limit; its usage is still known
    (it is the sum of its vfolders' ledgers)."""

    __tablename__ = "quotas"

    scope_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    scope_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    volume: Mapped[str] = mapped_column(String(64), primary_key=True)
    limit_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    limit_files: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # The highest alert threshold (percent: 0, 80, 95) crossed, so a crossing is told once.
    alert_level: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    last_reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ReservationRow(Base):
    """Bytes (and entries) a write in progress may still add to a vfolder. Counted against
    every scope of the vfolder until the write settles it into usage or releases it."""

    __tablename__ = "quota_reservations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    vfolder_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("vfolders.id", ondelete="CASCADE"), index=True
    )
    # Who holds it: "upload:<id>" for a tus upload, "write:<uuid>" for a PUT or form upload.
    holder: Mapped[str] = mapped_column(String(100), unique=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    files: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # A holder that died without settling or releasing: swept after this.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The node whose write holds it (a PUT, a form upload, a PATCH under way): released as
    # soon as that node is known dead. None while nobody writes (a tus upload between its
    # PATCHes, a clone's task, which any node takes over): ``expires_at`` alone bounds it.
    node: Mapped[str | None] = mapped_column(String(128), default=None, index=True)

    __table_args__ = (Index("ix_quota_reservations_expires", "expires_at"),)
