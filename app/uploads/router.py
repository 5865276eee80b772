"""The tus 1.0.0 endpoints of one vfolder: `/v1/vfolders/{id}/uploads`."""

from __future__ import annotations

import email.utils
import urllib.parse
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Request, Response, status

from app.deps import TransferablePrincipalDep, TusServiceDep
from app.errors import InvalidRequest
from app.files.router import request_body
from app.openapi_docs import VFOLDER_ACCESS, problem_responses
from app.uploads.protocol import (
    CHECKSUMS,
    OFFSET_CONTENT_TYPE,
    TUS_VERSION,
    check_resumable,
    parse_checksum,
    parse_concat,
    parse_length,
)
from app.uploads.schemas import UnfinishedUpload, UnfinishedUploads
from app.uploads.service import EXTENSIONS, UploadState

router = APIRouter(prefix="/v1/vfolders/{vfolder_id}/uploads", tags=["uploads"])

TusResumable = Annotated[str | None, Header(alias="Tus-Resumable")]


def _offset_octets_body(*, required: bool) -> dict[str, object]:
    """The tus body as a request body of the spec. Generators that do not know the media type
    map it to application/octet-stream (see openapi/openapi-python-client.yaml)."""
    return {
        "requestBody": {
            "required": required,
            "content": {OFFSET_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        }
    }


def _http_date(moment: datetime) -> str:
    return email.utils.format_datetime(moment, usegmt=True)


# Where the file is (or will be) stored, relative to the vfolder root, percent-encoded UTF-8:
# the destination the metadata named, the default one (the upload id) when it named none, and
# after completion where the file landed ("name (1).ext" under the rename policy).
DESTINATION_HEADER = "Upload-Destination"
DESTINATION_HEADER_DOC = {
    DESTINATION_HEADER: {
        "description": "The file's path in the vfolder, percent-encoded UTF-8 (absent for a "
        "partial upload). Without destination metadata it is the upload id, in the root; "
        "once completed, where the file landed.",
        "schema": {"type": "string"},
    }
}


def _state_headers(state: UploadState, *, with_length: bool = False) -> dict[str, str]:
    headers = {"Upload-Offset": str(state.offset), "Upload-Expires": _http_date(state.expires_at)}
    if state.destination:
        headers[DESTINATION_HEADER] = urllib.parse.quote(state.destination, safe="/")
    if with_length:
        if state.length is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(state.length)
        if state.metadata_header:
            headers["Upload-Metadata"] = state.metadata_header
        if state.concat:
            headers["Upload-Concat"] = state.concat
    return headers


@router.options(
    "",
    operation_id="uploads-options",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(422, authenticated=False),
)
async def options(vfolder_id: UUID, service: TusServiceDep) -> Response:
    """What this tus server speaks: version, extensions, maximum size, checksums."""
    return Response(
        status_code=status.HTTP_204_NO_CONTENT,
        headers={
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": ",".join(EXTENSIONS),
            "Tus-Max-Size": str(service.max_size),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
        },
    )


@router.post(
    "",
    operation_id="uploads-create",
    status_code=status.HTTP_201_CREATED,
    response_class=Response,
    responses={
        201: {
            "description": "Created; `Location` names the upload",
            "headers": DESTINATION_HEADER_DOC,
        },
        **problem_responses(400, 412, 413, 415, 423, 507, *VFOLDER_ACCESS),
    },
    openapi_extra=_offset_octets_body(required=False),
)
async def create(
    vfolder_id: UUID,
    request: Request,
    principal: TransferablePrincipalDep,
    service: TusServiceDep,
    tus_resumable: TusResumable = None,
    upload_length: Annotated[str | None, Header(alias="Upload-Length")] = None,
    upload_defer_length: Annotated[str | None, Header(alias="Upload-Defer-Length")] = None,
    upload_metadata: Annotated[str | None, Header(alias="Upload-Metadata")] = None,
    upload_checksum: Annotated[str | None, Header(alias="Upload-Checksum")] = None,
    upload_concat: Annotated[str | None, Header(alias="Upload-Concat")] = None,
) -> Response:
    """tus creation (with upload, deferred length): `Upload-Metadata` names the destination
    (`path`, or `filename` with an optional `dir`; without either, the upload id in the
    vfolder root) and may ask to `overwrite` (`1`/`0`, else the deployment's
    `STORAGE_UPLOAD_COLLISION` applies). `Upload-Destination` says where the file goes."""
    check_resumable(tus_resumable)
    concat = parse_concat(upload_concat)
    length = parse_length(upload_length, name="Upload-Length")
    if concat is not None and not concat.partial:
        if length is not None:
            raise _bad("a final upload takes its length from its parts")
    elif length is None and upload_defer_length != "1":
        raise _bad("Upload-Length, or Upload-Defer-Length: 1, is required")
    if length is not None and upload_defer_length is not None:
        raise _bad("Upload-Length and Upload-Defer-Length exclude each other")
    with_body = request.headers.get("content-type") == OFFSET_CONTENT_TYPE
    state = await service.create(
        principal,
        vfolder_id,
        length=length,
        metadata_header=upload_metadata or "",
        body=request_body(request) if with_body else None,
        checksum=parse_checksum(upload_checksum) if with_body else None,
        concat=concat,
    )
    headers = _state_headers(state)
    headers["Location"] = f"/v1/vfolders/{vfolder_id}/uploads/{state.id}"
    return Response(status_code=status.HTTP_201_CREATED, headers=headers)


@router.head(
    "/{upload_id}",
    operation_id="uploads-head",
    response_class=Response,
    responses={
        200: {"description": "The upload's state", "headers": DESTINATION_HEADER_DOC},
        **problem_responses(412, *VFOLDER_ACCESS),
    },
)
async def head(
    vfolder_id: UUID,
    upload_id: UUID,
    principal: TransferablePrincipalDep,
    service: TusServiceDep,
    tus_resumable: TusResumable = None,
) -> Response:
    """Where an upload stands: `Upload-Offset`, `Upload-Length`, `Upload-Metadata`."""
    check_resumable(tus_resumable)
    state = await service.head(principal, vfolder_id, upload_id)
    headers = _state_headers(state, with_length=True)
    headers["Cache-Control"] = "no-store"
    return Response(status_code=status.HTTP_200_OK, headers=headers)


@router.patch(
    "/{upload_id}",
    operation_id="uploads-append",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        204: {"description": "Appended", "headers": DESTINATION_HEADER_DOC},
        **problem_responses(400, 412, 413, 415, 423, 460, 503, 507, *VFOLDER_ACCESS),
    },
    openapi_extra=_offset_octets_body(required=True),
)
async def append(
    vfolder_id: UUID,
    upload_id: UUID,
    request: Request,
    principal: TransferablePrincipalDep,
    service: TusServiceDep,
    tus_resumable: TusResumable = None,
    upload_offset: Annotated[str | None, Header(alias="Upload-Offset")] = None,
    upload_length: Annotated[str | None, Header(alias="Upload-Length")] = None,
    upload_checksum: Annotated[str | None, Header(alias="Upload-Checksum")] = None,
) -> Response:
    """Append the body (`Content-Type: application/offset+octet-stream`) at `Upload-Offset`;
    acknowledged only once the bytes are on disk (fsync). One writer at a time: a concurrent
    PATCH gets 423 (retry after `Retry-After`)."""
    check_resumable(tus_resumable)
    offset = parse_length(upload_offset, name="Upload-Offset")
    if offset is None:
        raise _bad("Upload-Offset is required")
    state = await service.patch(
        principal,
        vfolder_id,
        upload_id,
        offset=offset,
        content_type=request.headers.get("content-type"),
        upload_length=parse_length(upload_length, name="Upload-Length"),
        body=request_body(request),
        checksum=parse_checksum(upload_checksum),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers=_state_headers(state))


@router.delete(
    "/{upload_id}",
    operation_id="uploads-terminate",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(412, *VFOLDER_ACCESS),
)
async def terminate(
    vfolder_id: UUID,
    upload_id: UUID,
    principal: TransferablePrincipalDep,
    service: TusServiceDep,
    tus_resumable: TusResumable = None,
) -> Response:
    """Abandon an upload: its staging file is removed at once. A finished upload is only
    forgotten (its file stays where it landed)."""
    check_resumable(tus_resumable)
    await service.terminate(principal, vfolder_id, upload_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("", operation_id="uploads-list", responses=problem_responses(*VFOLDER_ACCESS))
async def list_unfinished(
    vfolder_id: UUID, principal: TransferablePrincipalDep, service: TusServiceDep
) -> UnfinishedUploads:
    """Your unfinished uploads on this vfolder. Through an upload transfer token, only those
    to its path (or below its prefix); a download token gets 403."""
    states = await service.unfinished(principal, vfolder_id)
    return UnfinishedUploads(
        items=[
            UnfinishedUpload(
                id=s.id,
                destination=s.destination,
                offset=s.offset,
                length=s.length,
                expires_at=s.expires_at,
            )
            for s in states
        ]
    )


def _bad(detail: str) -> InvalidRequest:
    return InvalidRequest(detail)
