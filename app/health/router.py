from __future__ import annotations

from fastapi import APIRouter

from app.deps import HealthServiceDep
from app.health.schemas import CheckStatus, Liveness, Readiness
from app.openapi_docs import problem_responses

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", operation_id="health-live")
async def live() -> Liveness:
    """The process is up and serving requests."""
    return Liveness(status=CheckStatus.OK)


@router.get(
    "/ready",
    operation_id="health-ready",
    responses=problem_responses(503, authenticated=False),
)
async def ready(service: HealthServiceDep) -> Readiness:
    """Database reachable, every volume writable, cache reachable (`degraded` without it)."""
    return await service.require_ready()
