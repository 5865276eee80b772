"""``/volumes``, ``/folder/fs-usage``, ``/volume/hwinfo``, ``/volume/performance-metric``."""

from __future__ import annotations

from fastapi import APIRouter

from app.backendai.schemas import VolumeRequest
from app.deps import BackendAIVolumesDep, ManagerDep

router = APIRouter(tags=["backendai"])


@router.get("/volumes", operation_id="bai_volumes")
async def volumes(_manager: ManagerDep, service: BackendAIVolumesDep) -> dict[str, object]:
    return {"volumes": service.list()}


@router.get("/folder/fs-usage", operation_id="bai_fs_usage")
async def fs_usage(
    _manager: ManagerDep, service: BackendAIVolumesDep, body: VolumeRequest
) -> dict[str, int]:
    return await service.fs_usage(body.volume)


@router.get("/volume/hwinfo", operation_id="bai_volume_hwinfo")
async def hwinfo(
    _manager: ManagerDep, service: BackendAIVolumesDep, body: VolumeRequest
) -> dict[str, object]:
    return await service.hwinfo(body.volume)


@router.get("/volume/performance-metric", operation_id="bai_volume_performance_metric")
async def performance_metric(
    _manager: ManagerDep, service: BackendAIVolumesDep, body: VolumeRequest
) -> dict[str, object]:
    return service.performance_metric(body.volume)
