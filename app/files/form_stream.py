"""multipart/form-data parsed as it streams in (python-multipart's push parser), so a
browser upload of any size passes through in bounded memory, straight to staging files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class FileStart:
    filename: str


@dataclass(frozen=True, slots=True)
class FileData:
    data: bytes


@dataclass(frozen=True, slots=True)
class FileEnd:
    pass


FormEvent = FileStart | FileData | FileEnd


def boundary_of(content_type: str | None) -> bytes:
    if not content_type:
        raise InvalidRequest("Content-Type must be multipart/form-data")
    media_type, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise InvalidRequest("Content-Type must be multipart/form-data with a boundary")
    return boundary


async def file_events(body: AsyncIterator[bytes], *, boundary: bytes) -> AsyncIterator[FormEvent]:
    """Start / data / end events for each *file* part; plain fields are skipped."""
    pending: list[FormEvent] = []
    header_field = bytearray()
    header_value = bytearray()
    headers: dict[bytes, bytes] = {}
    in_file = False
    finished = False

    def on_end() -> None:
        nonlocal finished
        finished = True

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        nonlocal in_file
        _, options = parse_options_header(headers.get(b"content-disposition", b""))
        filename = options.get(b"filename")
        in_file = filename is not None
        if filename is not None:
            try:
                pending.append(FileStart(filename.decode("utf-8")))
            except UnicodeDecodeError:
                raise InvalidRequest("a file name in the form is not valid UTF-8") from None

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if in_file and end > start:
            pending.append(FileData(bytes(data[start:end])))

    def on_part_end() -> None:
        nonlocal in_file
        if in_file:
            pending.append(FileEnd())
        in_file = False

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": on_end,
        },
    )
    try:
        async for chunk in body:
            parser.write(chunk)
            for event in pending:
                yield event
            pending.clear()
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidRequest(f"malformed multipart body: {exc}") from None
    for event in pending:
        yield event
    if not finished:
        raise InvalidRequest("the multipart body is truncated (no closing boundary)")
