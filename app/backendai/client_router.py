"""Backend.AI's client-facing ``/upload`` and ``/download`` on the main listener: the URLs the
Manager hands to the 23.9 client with a token this server minted (``/folder/file/upload``,
``/folder/file/download`` on the Manager-facing listener)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status

from app.backendai.transfers import ClientTransfers
from app.deps import ClientTransfersDep, RuntimeDep
from app.errors import InvalidRequest
from app.files.download import file_response
from app.files.router import download_responses, request_body
from app.openapi_docs import problem_responses
from app.uploads.protocol import CHECKSUMS, OFFSET_CONTENT_TYPE, TUS_VERSION, check_resumable
from app.uploads.protocol import parse_length as parse_header_integer
from app.uploads.service import EXTENSIONS

router = APIRouter(tags=["backendai"])

Token = Annotated[
    str | None,
    Query(max_length=8192, description="The token `/folder/file/upload` or `/download` minted."),
]
TusResumable = Annotated[str | None, Header(alias="Tus-Resumable")]


# What a token refusal, a folder gone since the token was minted, or tus can answer.
_TOKEN_PROBLEMS = (400, 401, 403, 404, 409, 410, 422)


@router.options(
    "/upload",
    operation_id="backendai-upload-options",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(authenticated=False),
)
async def upload_options(runtime: RuntimeDep) -> Response:
    """tus discovery for a Backend.AI upload URL (the 23.9 client never asks)."""
    return Response(
        status_code=status.HTTP_204_NO_CONTENT,
        headers={
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": ",".join(EXTENSIONS),
            "Tus-Max-Size": str(runtime.settings.tus_max_size_bytes),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
        },
    )


@router.head(
    "/upload",
    operation_id="backendai-upload-head",
    response_class=Response,
    responses={
        200: {"description": "The upload's offset and length"},
        **problem_responses(*_TOKEN_PROBLEMS, 412, authenticated=False),
    },
)
async def upload_head(
    transfers: ClientTransfersDep, token: Token = None, tus_resumable: TusResumable = None
) -> Response:
    """Where a Backend.AI upload stands (the 23.9 client asks after a failed PATCH)."""
    if tus_resumable is not None:
        check_resumable(tus_resumable)
    state = await transfers.upload_state(token)
    headers = {"Upload-Offset": str(state.offset), "Cache-Control": "no-store"}
    if state.length is not None:
        headers["Upload-Length"] = str(state.length)
    return Response(status_code=status.HTTP_200_OK, headers=headers)


@router.patch(
    "/upload",
    operation_id="backendai-upload-append",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        204: {"description": "Appended; `Upload-Offset` is the new offset"},
        **problem_responses(*_TOKEN_PROBLEMS, 412, 413, 415, 423, 507, authenticated=False),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {OFFSET_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_append(
    request: Request,
    transfers: ClientTransfersDep,
    token: Token = None,
    tus_resumable: TusResumable = None,
    upload_offset: Annotated[str | None, Header(alias="Upload-Offset")] = None,
) -> Response:
    """A tus PATCH to a Backend.AI upload: the file lands at the token's path (replacing what
    is there) once all its bytes are in. Always 204 with `Upload-Offset` on success: the
    23.9 client reads nothing else."""
    if tus_resumable is not None:
        check_resumable(tus_resumable)
    offset = parse_header_integer(upload_offset, name="Upload-Offset")
    if offset is None:
        raise InvalidRequest("Upload-Offset is required")
    state = await transfers.append(
        token,
        offset=offset,
        content_type=request.headers.get("content-type"),
        body=request_body(request),
    )
    return Response(
        status_code=status.HTTP_204_NO_CONTENT, headers={"Upload-Offset": str(state.offset)}
    )


_DOWNLOAD_RESPONSES = download_responses(*_TOKEN_PROBLEMS, 416, authenticated=False)


@router.get(
    "/download",
    operation_id="backendai-download",
    response_class=Response,
    responses=_DOWNLOAD_RESPONSES,  # type: ignore[arg-type]
)
async def download(
    request: Request, transfers: ClientTransfersDep, token: Token = None
) -> Response:
    """A Backend.AI download: `Range` + `If-Range` resume (206), `Content-Length`,
    `Last-Modified` and a strong `ETag`."""
    return await _download(request, transfers, token, head=False)


@router.head(
    "/download",
    operation_id="backendai-download-head",
    response_class=Response,
    responses=_DOWNLOAD_RESPONSES,  # type: ignore[arg-type]
)
async def download_head(
    request: Request, transfers: ClientTransfersDep, token: Token = None
) -> Response:
    """The download's headers without its body."""
    return await _download(request, transfers, token, head=True)


async def _download(
    request: Request, transfers: ClientTransfers, token: str | None, *, head: bool
) -> Response:
    handle, name = await transfers.open_download(token)
    return await file_response(
        handle=handle,
        name=name,
        request_headers=request.headers,
        head=head,
        request_id=getattr(request.state, "request_id", None),
    )
