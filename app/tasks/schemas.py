from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.errors import Problem
from app.tasks.models import TaskRow, TaskState


class TaskProgress(BaseModel):
    current: int
    total: int | None = Field(description="Null while unknown.")
    unit: str = Field(description="What is counted: items, vfolders, bytes…")


class TaskView(BaseModel):
    id: uuid.UUID
    kind: str
    target: str
    state: TaskState
    progress: TaskProgress
    result: dict[str, Any] | None = Field(description="What a succeeded task produced.")
    problem: Problem | None = Field(description="Why a failed task failed (RFC 9457).")
    attempts: int = Field(description="How many times a node started it (takeovers add one).")
    node: str | None = Field(description="The node running it (host:pid:tag), while it runs.")
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: TaskRow) -> TaskView:
        return cls(
            id=row.id,
            kind=row.kind,
            target=row.target,
            state=TaskState(row.state),
            progress=TaskProgress(
                current=row.progress_current, total=row.progress_total, unit=row.progress_unit
            ),
            result=json.loads(row.result) if row.result else None,
            problem=Problem.model_validate_json(row.problem) if row.problem else None,
            attempts=row.attempts,
            node=row.node if row.state == TaskState.RUNNING.value else None,
            cancel_requested=row.cancel_requested,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


class TaskList(BaseModel):
    items: list[TaskView]
