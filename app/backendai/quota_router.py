"""``/quota-scope`` (GET, PATCH), ``/quota-scope/quota`` (DELETE) and the per-vfolder
``/volume/quota`` (GET, PATCH) that older Managers call."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.backendai.identity import QuotaScopeId, VFolderId
from app.backendai.schemas import (
    FolderRequest,
    QuotaScopeRequest,
    QuotaScopeUpdateRequest,
    VolumeQuotaUpdateRequest,
)
from app.deps import BackendAIFoldersDep
from app.errors import InvalidRequest

router = APIRouter(tags=["backendai"])


@router.get("/quota-scope", operation_id="bai_quota_scope_get")
async def get_scope(folders: BackendAIFoldersDep, body: QuotaScopeRequest) -> dict[str, int | None]:
    return await folders.scope_usage(body.volume, QuotaScopeId.parse(body.qsid))


@router.patch(
    "/quota-scope", operation_id="bai_quota_scope_update", status_code=204, response_class=Response
)
async def update_scope(folders: BackendAIFoldersDep, body: QuotaScopeUpdateRequest) -> Response:
    if body.options is None or body.options.limit_bytes is None:
        raise InvalidRequest("options.limit_bytes is required")
    await folders.set_scope_limit(
        body.volume, QuotaScopeId.parse(body.qsid), body.options.limit_bytes
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/quota-scope/quota",
    operation_id="bai_quota_scope_unset",
    status_code=204,
    response_class=Response,
)
async def unset_scope(folders: BackendAIFoldersDep, body: QuotaScopeRequest) -> Response:
    await folders.set_scope_limit(body.volume, QuotaScopeId.parse(body.qsid), None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/volume/quota", operation_id="bai_volume_quota_get")
async def get_vfolder_quota(folders: BackendAIFoldersDep, body: FolderRequest) -> int | None:
    """The vfolder's byte limit as a bare JSON number (null: none), as 22.09 proxies
    answered (``json_response(volume.get_quota(vfid))``)."""
    return await folders.vfolder_limit(body.volume, VFolderId.parse(body.vfid))


@router.patch(
    "/volume/quota",
    operation_id="bai_volume_quota_update",
    status_code=204,
    response_class=Response,
)
async def update_vfolder_quota(
    folders: BackendAIFoldersDep, body: VolumeQuotaUpdateRequest
) -> Response:
    await folders.set_vfolder_limit(body.volume, VFolderId.parse(body.vfid), body.size_bytes)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
