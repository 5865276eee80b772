"""Sharing grants: a mode on one vfolder for one user or one group."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.types import UTCDateTime, utcnow


class Mode(enum.StrEnum):
    """Access modes, weakest first: read-only, read-write, read-write-delete."""

    RO = "ro"
    RW = "rw"
    RWD = "rwd"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def covers(self, needed: Mode) -> bool:
        return self.rank >= needed.rank

    def at_least(self) -> list[Mode]:
        """Every mode at least as strong as this one."""
        return [mode for mode in Mode if mode.rank >= self.rank]


_RANK = {Mode.RO: 1, Mode.RW: 2, Mode.RWD: 3}


class GranteeType(enum.StrEnum):
    USER = "user"
    GROUP = "group"


class GrantRow(Base):
    __tablename__ = "vfolder_grants"

    vfolder_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("vfolders.id", ondelete="CASCADE"), primary_key=True
    )
    grantee_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    grantee_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    mode: Mapped[str] = mapped_column(String(8))
    granted_by: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_vfolder_grants_grantee", "grantee_type", "grantee_id"),)
