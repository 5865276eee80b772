"""File paths exactly as the client sent them. The server decodes URLs leniently (invalid
UTF-8 becomes U+FFFD); we re-decode the raw bytes strictly, so a name that is not UTF-8 is
refused instead of silently becoming another name."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote_to_bytes

from starlette.requests import Request

from drivers.errors import UnsafePath


def _strict_utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafePath("path is not valid UTF-8 after percent-decoding") from None


def path_after(request: Request, marker: str) -> str:
    """The percent-decoded remainder of the URL path after the ``/<marker>/`` segment."""
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    _, found, rest = raw.partition(f"/{marker}/".encode())
    if not found:
        return ""
    return _strict_utf8(unquote_to_bytes(rest))


def query_value(request: Request, name: str, default: str = "") -> str:
    raw = request.scope.get("query_string", b"").decode("latin-1")
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise UnsafePath("query is not valid UTF-8 after percent-decoding") from None
    for key, value in pairs:
        if key == name:
            return str(value)
    return default
