"""tus 1.0.0 wire details: headers in, validated values out. Pure functions.

https://tus.io/protocols/resumable-upload"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.errors import InvalidRequest, UnsupportedVersion

TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
TUS_HEADERS = (
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Defer-Length",
    "Upload-Metadata",
    "Upload-Expires",
    "Upload-Checksum",
    "Upload-Concat",
    "Upload-Destination",
    "Location",
)

# Checksum algorithms by their tus names; what OPTIONS advertises is this table's keys.
CHECKSUMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "md5": hashlib.md5,
    "sha256": hashlib.sha256,
}


def check_resumable(value: str | None) -> None:
    if value != TUS_VERSION:
        raise UnsupportedVersion(f"Tus-Resumable must be {TUS_VERSION}, got {value!r}")


def parse_length(value: str | None, *, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 19:
        raise InvalidRequest(f"{name} must be a non-negative integer")
    return int(value)


def parse_metadata(header: str | None) -> dict[str, str]:
    """``key base64value, key2, ...``; values must decode to UTF-8. Malformed → 400."""
    result: dict[str, str] = {}
    if not header:
        return result
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        if not parts[0] or len(parts) > 2 or parts[0] in result:
            raise InvalidRequest("malformed Upload-Metadata")
        key = parts[0]
        if not key.isascii() or any(ch in key for ch in " ,"):
            raise InvalidRequest("malformed Upload-Metadata key")
        if len(parts) == 1:
            result[key] = ""
            continue
        try:
            result[key] = base64.b64decode(parts[1], validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise InvalidRequest(f"Upload-Metadata {key!r} is not base64 of UTF-8") from None
    return result


@dataclass(frozen=True, slots=True)
class ExpectedChecksum:
    algorithm: str
    digest: bytes

    def hasher(self) -> Any:
        return CHECKSUMS[self.algorithm]()


def parse_checksum(header: str | None) -> ExpectedChecksum | None:
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm not in CHECKSUMS:
        raise InvalidRequest(f"unsupported checksum algorithm {algorithm!r}")
    try:
        return ExpectedChecksum(algorithm, base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        raise InvalidRequest("Upload-Checksum digest is not base64") from None


@dataclass(frozen=True, slots=True)
class Concat:
    """``Upload-Concat``: ``partial``, or ``final;<url> <url>…`` naming the parts in order."""

    partial: bool
    parts: tuple[str, ...] = ()


def parse_concat(header: str | None) -> Concat | None:
    if header is None:
        return None
    value = header.strip()
    if value == "partial":
        return Concat(partial=True)
    kind, _, urls = value.partition(";")
    parts = tuple(urls.split())
    if kind.strip() != "final" or not parts:
        raise InvalidRequest("Upload-Concat must be 'partial' or 'final;<url> <url>...'")
    return Concat(partial=False, parts=parts)
