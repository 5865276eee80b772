"""The upload API's JSON bodies (the tus protocol itself speaks in headers)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel


class UnfinishedUpload(BaseModel):
    id: UUID
    destination: str
    offset: int
    length: int | None
    expires_at: datetime


class UnfinishedUploads(BaseModel):
    items: list[UnfinishedUpload]
