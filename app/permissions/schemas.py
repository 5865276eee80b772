from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.permissions.models import GranteeType, Mode

GranteeId = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class GrantSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Mode = Field(description="`ro`, `rw` or `rwd`.")


class GrantInfo(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    grantee_type: GranteeType
    grantee_id: str
    mode: Mode
    granted_by: str
    created_at: datetime
    updated_at: datetime


class GrantList(BaseModel):
    items: list[GrantInfo]
