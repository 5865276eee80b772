"""Long operations, persisted so that any node can report on them and take them over."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.types import UTCDateTime, utcnow


class TaskState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED}


LIVE_TASK = text("state IN ('queued', 'running')")


class TaskRow(Base):
    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))  # what it works on: a volume, a vfolder…
    owner: Mapped[str] = mapped_column(String(300), index=True)  # "<principal kind>:<id>"
    state: Mapped[str] = mapped_column(String(16), default=TaskState.QUEUED.value)
    progress_current: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_total: Mapped[int | None] = mapped_column(BigInteger, default=None)
    progress_unit: Mapped[str] = mapped_column(String(16), default="items")
    result: Mapped[str | None] = mapped_column(Text, default=None)  # JSON
    problem: Mapped[str | None] = mapped_column(Text, default=None)  # JSON, RFC 9457
    # The node running it and until when its lease holds; another node takes over after.
    node: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    __table_args__ = (
        Index("ix_tasks_state_lease", "state", "lease_expires_at"),
        # One live task per kind and target in the whole cluster: a second submission (from
        # a user, or the same schedule firing on another node) finds the first instead.
        Index(
            "ux_tasks_live_kind_target",
            "kind",
            "target",
            unique=True,
            sqlite_where=LIVE_TASK,
            postgresql_where=LIVE_TASK,
        ),
    )


class NodeRow(Base):
    """A running process of the service, alive while it renews ``alive_until`` (its lease,
    as long as a task's). Work a node holds (quota reservations of writes in progress) is
    abandoned once its lease has run out: the node died, or restarted under a new name."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # host:pid:tag
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    alive_until: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
