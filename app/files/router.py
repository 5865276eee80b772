from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse

from app.auth.principal import Principal
from app.deps import FilesServiceDep, PrincipalDep, TransferablePrincipalDep
from app.errors import PreconditionFailed, Problem, RequestAborted, driver_problem
from app.files.download import file_response
from app.files.form_stream import boundary_of
from app.files.http_conditions import parse_etag
from app.files.raw_paths import path_after, query_value
from app.files.schemas import (
    DeleteRequest,
    DeleteResults,
    FileInfo,
    FileList,
    ListingEnd,
    MkdirRequest,
    MoveRequest,
    TransferToken,
    TransferTokenCreate,
    UploadedFile,
    UploadedFiles,
    file_info_json,
    file_list_json,
)
from app.files.service import FilesService
from app.openapi_docs import VFOLDER_ACCESS, problem_responses
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT
from drivers.errors import DriverError, PathExists
from drivers.paths import display_text
from drivers.types import FileEntry

router = APIRouter(prefix="/v1/vfolders/{vfolder_id}", tags=["files"])

NDJSON = "application/x-ndjson"
PathQuery = Annotated[
    str, Query(max_length=8192, description="Relative to the vfolder root; empty for the root.")
]
UrlPath = Annotated[str, Path(description="Relative to the vfolder root, percent-encoded.")]


async def request_body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise RequestAborted("the client disconnected before the body was complete") from None


@router.get(
    "/list",
    operation_id="files-list",
    response_model=FileList,
    responses={
        200: {
            "description": "A page of entries; with `Accept: application/x-ndjson`, every "
            "entry as one JSON object per line, then a last line "
            '`{"complete": true|false, "count": N, "error": problem|null}`.',
            "content": {NDJSON: {"schema": {"type": "string"}}},
        },
        **problem_responses(400, *VFOLDER_ACCESS),
    },
)
async def list_directory(
    vfolder_id: UUID,
    request: Request,
    principal: PrincipalDep,
    service: FilesServiceDep,
    path: PathQuery = "",
    recursive: Annotated[bool, Query(description="Walk the whole subtree, depth first.")] = False,
    cursor: Annotated[str | None, Query(max_length=8192)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Response:
    """List a directory, sorted by name, one page at a time (or all of it as NDJSON)."""
    raw_path = query_value(request, "path")
    if NDJSON in request.headers.get("accept", ""):
        batches = await service.open_listing(principal, vfolder_id, raw_path, recursive=recursive)
        return StreamingResponse(_ndjson(batches), media_type=NDJSON)
    entries, next_cursor = await service.list_dir(
        principal, vfolder_id, raw_path, recursive=recursive, cursor=cursor, limit=limit
    )
    return Response(file_list_json(entries, next_cursor), media_type="application/json")


async def _ndjson(batches: AsyncIterator[list[FileEntry]]) -> AsyncIterator[bytes]:
    count = 0
    end = ListingEnd(complete=True, count=0)
    try:
        async for batch in batches:
            count += len(batch)
            yield b"".join(file_info_json(entry) + b"\n" for entry in batch)
    except DriverError as exc:
        problem_type, title, status_code = driver_problem(exc)
        detail = display_text(str(exc))
        error = Problem(type=problem_type, title=title, status=status_code, detail=detail)
        end = ListingEnd(complete=False, count=count, error=error)
    end.count = count
    yield end.model_dump_json().encode() + b"\n"


@router.get("/stat", operation_id="files-stat", responses=problem_responses(400, *VFOLDER_ACCESS))
async def stat_path(
    vfolder_id: UUID,
    request: Request,
    principal: PrincipalDep,
    service: FilesServiceDep,
    path: PathQuery = "",
) -> FileInfo:
    """One entry's type, size, time and mode; a symlink is described, not followed."""
    return await service.stat(principal, vfolder_id, query_value(request, "path"))


# A file is served with the type its name suggests (`text/plain` for `.txt`…), else
# `application/octet-stream`: any media type.
_FILE_CONTENT = {"*/*": {"schema": {"type": "string", "format": "binary"}}}


def download_responses(*problems: int, authenticated: bool = True) -> dict[int | str, object]:
    """What a file download answers: the file, a range, not modified, or a problem."""
    return {
        200: {"description": "The file", "content": _FILE_CONTENT},
        206: {"description": "The requested byte range", "content": _FILE_CONTENT},
        304: {"description": "Not modified (If-None-Match / If-Modified-Since)"},
        **problem_responses(*problems, authenticated=authenticated),
    }


_DOWNLOAD_RESPONSES = download_responses(400, 416, *VFOLDER_ACCESS)


@router.get(
    "/files/{path:path}",
    operation_id="files-download",
    response_class=Response,
    responses=_DOWNLOAD_RESPONSES,  # type: ignore[arg-type]
)
async def download(
    vfolder_id: UUID,
    path: UrlPath,
    request: Request,
    principal: TransferablePrincipalDep,
    service: FilesServiceDep,
) -> Response:
    """Download a file: single `Range` → 206, several ranges → the whole file (200);
    strong `ETag`, `If-None-Match`, `If-Modified-Since`, `If-Range`."""
    return await _download(vfolder_id, request, principal, service, head=False)


@router.head(
    "/files/{path:path}",
    operation_id="files-head",
    response_class=Response,
    responses=_DOWNLOAD_RESPONSES,  # type: ignore[arg-type]
)
async def head(
    vfolder_id: UUID,
    path: UrlPath,
    request: Request,
    principal: TransferablePrincipalDep,
    service: FilesServiceDep,
) -> Response:
    """The download's headers without its body."""
    return await _download(vfolder_id, request, principal, service, head=True)


async def _download(
    vfolder_id: UUID,
    request: Request,
    principal: Principal,
    service: FilesService,
    *,
    head: bool,
) -> Response:
    handle, name = await service.open_download(principal, vfolder_id, path_after(request, "files"))
    return await file_response(
        handle=handle,
        name=name,
        request_headers=request.headers,
        head=head,
        request_id=getattr(request.state, "request_id", None),
    )


@router.put(
    "/files/{path:path}",
    operation_id="files-upload",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": UploadedFile, "description": "An existing file was replaced"},
        **problem_responses(400, 412, 413, 507, *VFOLDER_ACCESS),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def upload(
    vfolder_id: UUID,
    path: UrlPath,
    request: Request,
    response: Response,
    principal: TransferablePrincipalDep,
    service: FilesServiceDep,
    parents: Annotated[bool, Query(description="Create missing parent directories.")] = False,
    if_none_match: Annotated[
        str | None, Header(description="`*`: refuse to replace an existing file (412).")
    ] = None,
    if_match: Annotated[
        str | None, Header(description="Replace only the file with this ETag (else 412).")
    ] = None,
) -> UploadedFile:
    """Upload a file from the raw request body, streamed to disk and renamed into place
    atomically once complete: readers never see a partial file."""
    expected = None
    if if_match is not None:
        expected = parse_etag(if_match)
        if expected is None:
            raise PreconditionFailed("If-Match names no version this server issued")
    length = request.headers.get("content-length")
    try:
        stored = await service.upload(
            principal,
            vfolder_id,
            path_after(request, "files"),
            request_body(request),
            replace=if_none_match is None,
            if_match=expected,
            parents=parents,
            content_length=int(length) if length and length.isdigit() else None,
        )
    except PathExists as exc:
        if if_none_match is not None:
            raise PreconditionFailed(str(exc)) from None
        raise
    response.headers["ETag"] = stored.etag
    if not stored.created:
        response.status_code = status.HTTP_200_OK
    return stored


@router.post(
    "/upload",
    operation_id="files-upload-form",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 413, 507, *VFOLDER_ACCESS),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            }
                        },
                    }
                }
            },
        }
    },
)
async def upload_form(
    vfolder_id: UUID,
    request: Request,
    principal: TransferablePrincipalDep,
    service: FilesServiceDep,
    dir: PathQuery = "",
    parents: Annotated[bool, Query(description="Create missing directories.")] = False,
    overwrite: Annotated[bool, Query(description="Replace existing files.")] = False,
) -> UploadedFiles:
    """Upload one or more files from a browser form into a directory, streamed."""
    return await service.upload_form(
        principal,
        vfolder_id,
        query_value(request, "dir"),
        request_body(request),
        boundary=boundary_of(request.headers.get("content-type")),
        replace=overwrite,
        parents=parents,
    )


@router.post(
    "/mkdir", operation_id="files-mkdir", responses=problem_responses(400, *VFOLDER_ACCESS)
)
async def mkdir(
    vfolder_id: UUID, body: MkdirRequest, principal: PrincipalDep, service: FilesServiceDep
) -> FileInfo:
    """Create a directory."""
    return await service.mkdir(
        principal, vfolder_id, body.path, parents=body.parents, exist_ok=body.exist_ok
    )


@router.post("/move", operation_id="files-move", responses=problem_responses(400, *VFOLDER_ACCESS))
async def move(
    vfolder_id: UUID, body: MoveRequest, principal: PrincipalDep, service: FilesServiceDep
) -> FileInfo:
    """Move or rename a file or directory within the vfolder (atomic)."""
    return await service.move(
        principal,
        vfolder_id,
        body.source,
        body.destination,
        overwrite=body.overwrite,
        percent_encoded=body.percent_encoded,
    )


@router.post("/delete", operation_id="files-delete", responses=problem_responses(*VFOLDER_ACCESS))
async def delete(
    vfolder_id: UUID, body: DeleteRequest, principal: PrincipalDep, service: FilesServiceDep
) -> DeleteResults:
    """Delete several paths; the reply says, per path, deleted or why not."""
    return await service.delete(
        principal,
        vfolder_id,
        body.paths,
        recursive=body.recursive,
        percent_encoded=body.percent_encoded,
    )


@router.post(
    "/transfer-tokens",
    operation_id="files-create-transfer-token",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, *VFOLDER_ACCESS),
)
async def create_transfer_token(
    vfolder_id: UUID,
    body: TransferTokenCreate,
    principal: PrincipalDep,
    service: FilesServiceDep,
) -> TransferToken:
    """A short-lived token to download or upload one path (or below a prefix), for a browser
    link or a tus client; never more than your own rights, which are checked at every use."""
    return await service.create_transfer_token(principal, vfolder_id, body)
