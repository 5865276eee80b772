"""File paths exactly as the client sent them. The server decodes URLs leniently (invalid
UTF-8 becomes U+FFFD, so two names could become one); we re-decode the raw bytes
losslessly instead: bytes that are not UTF-8 are held as ``drivers.paths.RAW_ERRORS`` holds
them, and the path parser decides whether the operation accepts them (reading, moving away
or deleting an entry made through a mount) or refuses them (making a name)."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote_to_bytes

from starlette.requests import Request

from drivers.paths import RAW_ERRORS, decode_raw


def path_after(request: Request, marker: str) -> str:
    """The percent-decoded remainder of the URL path after the ``/<marker>/`` segment."""
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    _, found, rest = raw.partition(f"/{marker}/".encode())
    if not found:
        return ""
    return decode_raw(unquote_to_bytes(rest))


def query_value(request: Request, name: str, default: str = "") -> str:
    raw = request.scope.get("query_string", b"").decode("latin-1")
    pairs = parse_qsl(raw, keep_blank_values=True, encoding="utf-8", errors=RAW_ERRORS)
    for key, value in pairs:
        if key == name:
            return str(value)
    return default


def percent_decoded(text: str) -> str:
    """A path given percent-encoded in a JSON body (as listings show ``raw_path``)."""
    return decode_raw(unquote_to_bytes(text))
