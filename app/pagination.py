"""Opaque keyset cursors: clients get a token, never an offset, so pages stay correct while
rows are added or removed between requests."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from app.errors import InvalidCursor

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, keys: tuple[str, ...]) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("cursor is not one this server issued") from None
    if not isinstance(position, dict) or set(position) != set(keys):
        raise InvalidCursor("cursor is not one this server issued")
    return position
