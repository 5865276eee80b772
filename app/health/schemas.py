from __future__ import annotations

import enum

from pydantic import BaseModel


class CheckStatus(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"


class Check(BaseModel):
    status: CheckStatus
    detail: str | None = None


class Readiness(BaseModel):
    status: CheckStatus
    checks: dict[str, Check]


class Liveness(BaseModel):
    status: CheckStatus
