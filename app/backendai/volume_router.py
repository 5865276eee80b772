"""``/volumes``, ``/folder/fs-usage``, ``/volume/hwinfo``, ``/volume/performance-metric``."""

from __future__ import annotations

from fastapi import APIRouter

from app.backendai.schemas import VolumeRequest
from app.deps import BackendAIVolumesDep

router = APIRouter(tags=["backendai"])


@router.get("/volumes", operation_id="bai_volumes")
async def volumes(service: BackendAIVolumesDep) -> dict[str, object]:
    return {"volumes": service.list()}


@router.get("/folder/fs-usage", operation_id="bai_fs_usage")
async def fs_usage(service: BackendAIVolumesDep, body: VolumeRequest) -> dict[str, int]:
    return await service.fs_usage(body.volume)


@router.get("/volume/hwinfo", operation_id="bai_volume_hwinfo")
async def hwinfo(service: BackendAIVolumesDep, body: VolumeRequest) -> dict[str, object]:
    return await service.hwinfo(body.volume)


@router.get("/volume/performance-metric", operation_id="bai_volume_performance_metric")
async def performance_metric(
    service: BackendAIVolumesDep, body: VolumeRequest
) -> dict[str, object]:
    return service.performance_metric(body.volume)
