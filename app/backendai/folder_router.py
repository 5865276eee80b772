"""``/folder/create``, ``/folder/delete``, ``/folder/clone``, ``/folder/mount``,
``/folder/usage``, ``/folder/used-bytes``: the Manager's vfolder calls."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.backendai.identity import VFolderId
from app.backendai.schemas import (
    FolderCloneRequest,
    FolderCreateRequest,
    FolderMountRequest,
    FolderRequest,
)
from app.deps import BackendAIFoldersDep

router = APIRouter(tags=["backendai"])


@router.post(
    "/folder/create", operation_id="bai_folder_create", status_code=204, response_class=Response
)
async def create(folders: BackendAIFoldersDep, body: FolderCreateRequest) -> Response:
    await folders.create(body.volume, VFolderId.parse(body.vfid), body.options)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/folder/delete", operation_id="bai_folder_delete", status_code=204, response_class=Response
)
async def delete(folders: BackendAIFoldersDep, body: FolderRequest) -> Response:
    await folders.delete(body.volume, VFolderId.parse(body.vfid))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/folder/clone", operation_id="bai_folder_clone", status_code=204, response_class=Response
)
async def clone(folders: BackendAIFoldersDep, body: FolderCloneRequest) -> Response:
    await folders.clone(
        body.src_volume,
        VFolderId.parse(body.src_vfid),
        body.dst_volume,
        VFolderId.parse(body.dst_vfid),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/folder/mount", operation_id="bai_folder_mount")
async def mount(folders: BackendAIFoldersDep, body: FolderMountRequest) -> dict[str, str]:
    path = await folders.mount_path(body.volume, VFolderId.parse(body.vfid), body.subpath)
    return {"path": path}


@router.get("/folder/usage", operation_id="bai_folder_usage")
async def usage(folders: BackendAIFoldersDep, body: FolderRequest) -> dict[str, int]:
    used_bytes, file_count = await folders.usage(body.volume, VFolderId.parse(body.vfid))
    return {"file_count": file_count, "used_bytes": used_bytes}


@router.get("/folder/used-bytes", operation_id="bai_folder_used_bytes")
async def used_bytes(folders: BackendAIFoldersDep, body: FolderRequest) -> dict[str, int]:
    used, _file_count = await folders.usage(body.volume, VFolderId.parse(body.vfid))
    return {"used_bytes": used}
