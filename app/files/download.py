"""Turns an open file and the request's validators into the HTTP reply: 200, 206, 304 or
416, with ETag, Last-Modified, Content-Disposition (RFC 6266) and a streamed body."""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator, Mapping
from urllib.parse import quote

from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app.files.http_conditions import (
    ByteRange,
    Unsatisfiable,
    etag_of,
    last_modified_of,
    not_modified,
    parse_range,
    range_applies,
)
from app.observability.logging import get_logger
from app.problems import problem_response
from drivers.base import Readable
from drivers.paths import display_text

log = get_logger(__name__)

CHUNK_BYTES = 1024 * 1024


def content_disposition(name: str) -> str:
    """``filename`` for old clients (ASCII, quotes escaped), ``filename*`` with the real
    name for everyone else (bytes of it that are not UTF-8 as U+FFFD)."""
    name = display_text(name)
    fallback = name.encode("ascii", "replace").decode().replace("\\", "_").replace('"', "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class FileStream(StreamingResponse):
    """Streams a range of an open file, a chunk per read; closes the file however the
    response ends (finished, client gone, or the file changed under us — then the
    connection is cut, so the client cannot mistake a mixed body for the file)."""

    def __init__(
        self,
        *,
        handle: Readable,
        byte_range: ByteRange,
        status_code: int,
        headers: Mapping[str, str],
        media_type: str,
    ) -> None:
        self._handle = handle
        super().__init__(
            self._chunks(handle, byte_range),
            status_code=status_code,
            headers=headers,
            media_type=media_type,
        )

    @staticmethod
    async def _chunks(handle: Readable, byte_range: ByteRange) -> AsyncIterator[bytes]:
        offset, remaining = byte_range.start, byte_range.length
        while remaining > 0:
            chunk = await handle.read(offset, min(CHUNK_BYTES, remaining))
            if not chunk:
                break  # cannot happen unless the file changed; read() would have said so
            offset += len(chunk)
            remaining -= len(chunk)
            yield chunk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._handle.close()


async def file_response(
    *,
    handle: Readable,
    name: str,
    request_headers: Mapping[str, str],
    head: bool,
    request_id: str | None,
) -> Response:
    version = handle.version
    headers = {
        "ETag": etag_of(version),
        "Last-Modified": last_modified_of(version),
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(name),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-cache",
    }
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"

    if not_modified(
        version,
        if_none_match=request_headers.get("if-none-match"),
        if_modified_since=request_headers.get("if-modified-since"),
    ):
        await handle.close()
        return Response(status_code=304, headers=headers)

    status_code = 200
    byte_range = ByteRange(0, version.size - 1)
    if range_applies(version, if_range=request_headers.get("if-range")):
        try:
            requested = parse_range(request_headers.get("range"), version.size)
        except Unsatisfiable:
            await handle.close()
            response = problem_response(
                problem_type="/problems/range-not-satisfiable",
                title="Range not satisfiable",
                status=416,
                detail=f"the file has {version.size} bytes",
                request_id=request_id,
                headers={"Content-Range": f"bytes */{version.size}", **headers},
                size=version.size,
            )
            return response
        if requested is not None:
            status_code = 206
            byte_range = requested
            headers["Content-Range"] = requested.content_range(version.size)
    headers["Content-Length"] = str(max(byte_range.length, 0))

    if head or version.size == 0:
        await handle.close()
        return Response(status_code=status_code, headers=headers, media_type=media_type)
    return FileStream(
        handle=handle,
        byte_range=byte_range,
        status_code=status_code,
        headers=headers,
        media_type=media_type,
    )
