"""What Backend.AI's proxy answers without authentication on its Manager-facing port."""

from __future__ import annotations

from fastapi import APIRouter

from app import __version__

router = APIRouter(tags=["backendai"])


@router.get("/", operation_id="bai_status_root")
@router.get("/status", operation_id="bai_status")
async def status() -> dict[str, str]:
    return {"status": "ok", "type": "manager-facing", "storage-proxy": __version__}
