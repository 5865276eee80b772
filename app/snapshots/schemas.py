"""The snapshot API's request and response bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, Field

from drivers.base import SnapshotInfo

SnapshotName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]


class SnapshotCreate(BaseModel):
    name: SnapshotName


class SnapshotView(BaseModel):
    name: str
    created_at: datetime
    size_bytes: int | None = Field(
        description="Space only this snapshot holds (what deleting it frees); null if unknown."
    )

    @classmethod
    def of(cls, info: SnapshotInfo) -> SnapshotView:
        return cls(
            name=info.name,
            created_at=datetime.fromtimestamp(info.created_at, UTC),
            size_bytes=info.size_bytes,
        )


class SnapshotList(BaseModel):
    items: list[SnapshotView]


class SnapshotRestore(BaseModel):
    path: str | None = Field(
        default=None, description="One file to restore (replacing it); null: the whole vfolder."
    )
