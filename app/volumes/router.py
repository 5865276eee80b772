from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from app.deps import PrincipalDep, VolumeServiceDep
from app.openapi_docs import problem_responses
from app.volumes.schemas import Volume, VolumeList

router = APIRouter(prefix="/v1/volumes", tags=["volumes"])


@router.get("", operation_id="volumes-list", responses=problem_responses())
async def list_volumes(_principal: PrincipalDep, service: VolumeServiceDep) -> VolumeList:
    """List the configured volumes with their backend, capabilities and capacity."""
    return await service.list()


@router.get("/{volume}", operation_id="volumes-get", responses=problem_responses(404))
async def get_volume(
    volume: Annotated[str, Path(max_length=64)],
    _principal: PrincipalDep,
    service: VolumeServiceDep,
) -> Volume:
    """One volume: backend, native capabilities and current capacity."""
    return await service.get(volume)
