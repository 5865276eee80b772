"""``/folder/file/*``: the Manager's file calls. ``request.state.bai_paths`` names the paths an
error is about: the error body carries them with the errno, as Backend.AI's proxy does."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response, status
from pydantic import Field
from starlette.responses import StreamingResponse

from app.backendai.schemas import FolderRequest
from app.deps import BackendAIFilesDep
from app.files.download import FileStream
from app.files.http_conditions import ByteRange
from app.problems import problem_response

router = APIRouter(prefix="/folder/file", tags=["backendai"])

# Paths are bounded as /v1's are; everything else is checked by the services.
RelPath = Annotated[str, Field(max_length=4096)]


class FileRequest(FolderRequest):
    relpath: RelPath


class FileMkdirRequest(FileRequest):
    parents: bool = True
    exist_ok: bool = False


class FileRenameRequest(FileRequest):
    new_name: RelPath


class FileMoveRequest(FolderRequest):
    src_relpath: RelPath
    dst_relpath: RelPath


class FileDeleteRequest(FolderRequest):
    relpaths: list[RelPath] = Field(min_length=1, max_length=1000)
    recursive: bool = False


class FileUploadRequest(FileRequest):
    size: int = Field(ge=0)


class FileDownloadRequest(FileRequest):
    archive: bool = False
    unmanaged_path: str | None = None


def _about(request: Request, *paths: str) -> None:
    request.state.bai_paths = list(paths)


@router.post("/mkdir", operation_id="bai_file_mkdir", status_code=status.HTTP_204_NO_CONTENT)
async def mkdir(service: BackendAIFilesDep, body: FileMkdirRequest, request: Request) -> Response:
    _about(request, body.relpath)
    await service.mkdir(
        body.volume, body.vfid, body.relpath, parents=body.parents, exist_ok=body.exist_ok
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/list", operation_id="bai_file_list")
async def list_files(
    service: BackendAIFilesDep, body: FileRequest, request: Request
) -> StreamingResponse:
    _about(request, body.relpath)
    chunks = await service.list_dir(body.volume, body.vfid, body.relpath)
    return StreamingResponse(chunks, media_type="application/json")


@router.post("/rename", operation_id="bai_file_rename", status_code=status.HTTP_204_NO_CONTENT)
async def rename(service: BackendAIFilesDep, body: FileRenameRequest, request: Request) -> Response:
    _about(request, body.relpath)
    await service.rename(body.volume, body.vfid, body.relpath, body.new_name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/move", operation_id="bai_file_move", status_code=status.HTTP_204_NO_CONTENT)
async def move(service: BackendAIFilesDep, body: FileMoveRequest, request: Request) -> Response:
    _about(request, body.src_relpath, body.dst_relpath)
    await service.move(body.volume, body.vfid, body.src_relpath, body.dst_relpath)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/delete", operation_id="bai_file_delete", response_model=None)
async def delete(
    service: BackendAIFilesDep, body: FileDeleteRequest, request: Request
) -> dict[str, str] | Response:
    failed = await service.delete(body.volume, body.vfid, body.relpaths, recursive=body.recursive)
    if failed is None:
        return {"status": "ok"}
    assert failed.problem is not None
    _about(request, failed.path)
    request.state.problem_type = failed.problem.type
    return problem_response(
        problem_type=failed.problem.type,
        title=failed.problem.title,
        status=failed.problem.status,
        detail=failed.problem.detail,
        request_id=getattr(request.state, "request_id", None),
    )


@router.post("/fetch", operation_id="bai_file_fetch", response_class=Response)
async def fetch(service: BackendAIFilesDep, body: FileRequest, request: Request) -> Response:
    _about(request, body.relpath)
    handle = await service.fetch(body.volume, body.vfid, body.relpath)
    size = handle.version.size
    return FileStream(
        handle=handle,
        byte_range=ByteRange(0, size - 1),
        status_code=status.HTTP_200_OK,
        headers={"Content-Length": str(size)},
        media_type="application/octet-stream",
    )


@router.post("/upload", operation_id="bai_file_upload")
async def upload(
    service: BackendAIFilesDep, body: FileUploadRequest, request: Request
) -> dict[str, str]:
    _about(request, body.relpath)
    return {"token": await service.upload_token(body.volume, body.vfid, body.relpath, body.size)}


@router.post("/download", operation_id="bai_file_download")
async def download(
    service: BackendAIFilesDep, body: FileDownloadRequest, request: Request
) -> dict[str, str]:
    _about(request, body.relpath)
    token = await service.download_token(
        body.volume,
        body.vfid,
        body.relpath,
        archive=body.archive,
        unmanaged_path=body.unmanaged_path,
    )
    return {"token": token}
