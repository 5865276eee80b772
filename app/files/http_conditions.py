"""HTTP validators and byte ranges for downloads (RFC 9110 §8.8, §13, §14), as pure
functions: headers in, decisions out."""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from drivers.types import FileVersion

_ETAG = re.compile(r'^"([0-9a-f]+)-([0-9a-f]+)-([0-9a-f]+)"$')
_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def etag_of(version: FileVersion) -> str:
    """Strong: any change of content changes size or mtime, and replacing the file changes
    the inode."""
    return f'"{version.inode:x}-{version.size:x}-{version.mtime_ns:x}"'


def parse_etag(value: str) -> FileVersion | None:
    match = _ETAG.match(value.strip())
    if match is None:
        return None
    inode, size, mtime_ns = (int(part, 16) for part in match.groups())
    return FileVersion(inode=inode, size=size, mtime_ns=mtime_ns)


def last_modified_of(version: FileVersion) -> str:
    return email.utils.formatdate(version.mtime_ns // 1_000_000_000, usegmt=True)


def _http_date(value: str) -> datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _modified_seconds(version: FileVersion) -> int:
    return version.mtime_ns // 1_000_000_000


def _etag_list(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def not_modified(
    version: FileVersion, *, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    """True when a GET/HEAD should be answered 304. If-None-Match wins over
    If-Modified-Since (RFC 9110 §13.1.3); it uses weak comparison."""
    if if_none_match is not None:
        tags = _etag_list(if_none_match)
        current = etag_of(version)
        return "*" in tags or any(tag.removeprefix("W/") == current for tag in tags)
    if if_modified_since is not None:
        since = _http_date(if_modified_since)
        return since is not None and _modified_seconds(version) <= int(since.timestamp())
    return False


def range_applies(version: FileVersion, *, if_range: str | None) -> bool:
    """If-Range: serve the range only if the validator still matches (strong comparison for
    an ETag, exact equality for a date); otherwise the whole file."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith('"') or value.startswith("W/"):
        return value == etag_of(version)
    date = _http_date(value)
    return date is not None and int(date.timestamp()) == _modified_seconds(version)


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class Unsatisfiable(Exception):
    """Every requested range lies beyond the end of the file (416)."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single range to serve, or None for the whole file.

    A malformed header is ignored, as RFC 9110 §14.2 allows. Several ranges are answered
    with the whole file (200) rather than ``multipart/byteranges``: simpler for every client,
    and never more bytes than a full download. Raises ``Unsatisfiable``."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        return None
    specs = spec.split(",")
    if len(specs) != 1:
        return None
    match = _RANGE.match(specs[0])
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0:
            raise Unsatisfiable
        if size == 0:
            raise Unsatisfiable
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # syntactically invalid: ignored
    if start >= size:
        raise Unsatisfiable
    end = int(last) if last else size - 1
    return ByteRange(start, min(end, size - 1))
