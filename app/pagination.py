"""Opaque keyset cursors: clients get a token, never an offset, so pages stay correct while
rows are added or removed between requests.

A cursor is client-held state the server acts on, so it is sealed: an HMAC-SHA256 tag under
a key derived from the JWT secret (never the secret itself) covers the position *and* the
listing it was issued for (endpoint, vfolder, path, flags, sort, filters, principal). The
listing is not carried in the cursor; the server rebuilds it from the request, so a cursor
replayed on another listing, or by another principal, fails like a forged one. Anything that
does not verify answers 400 ``/problems/invalid-cursor``; what verifies is still validated by
its endpoint before use (defence in depth)."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.auth.principal import Principal
from app.config import Settings
from app.errors import InvalidCursor
from app.observability.logging import get_logger

log = get_logger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

# Domain separation: a cursor key is good for cursors only, and "v1" names this format.
CURSOR_KEY_INFO = b"storage-proxy cursor v1"
MAX_CURSOR_CHARS = 8192

Listing = Mapping[str, str | bool | int | None]


@functools.cache
def derive_cursor_key(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=CURSOR_KEY_INFO).derive(
        secret.encode("utf-8", "surrogatepass")
    )


def principal_key(principal: Principal) -> str:
    """Who a cursor belongs to: the same caller with a refreshed token keeps paging."""
    return f"{principal.kind.value}:{principal.id}"


def _canonical(value: object) -> bytes:
    # ASCII-only JSON: no raw newline (the separator below) and no lone surrogate to encode.
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("ascii")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    raw = text.encode("ascii")
    return base64.b64decode(raw + b"=" * (-len(raw) % 4), altchars=b"-_", validate=True)


@dataclass(frozen=True, slots=True)
class CursorSealer:
    """Seals with the first key and opens with any, so a rotated JWT secret (listed in
    ``STORAGE_JWT_PREVIOUS_SECRETS``) keeps the cursors in flight valid."""

    keys: tuple[bytes, ...]

    @classmethod
    def from_secrets(cls, secrets: Sequence[str]) -> CursorSealer:
        return cls(tuple(derive_cursor_key(secret) for secret in secrets if secret))

    @staticmethod
    def _tag(key: bytes, listing: Listing, payload: bytes) -> bytes:
        return hmac.new(key, _canonical(dict(listing)) + b"\n" + payload, hashlib.sha256).digest()

    def seal(self, position: Mapping[str, Any], *, listing: Listing) -> str:
        payload = _canonical(dict(position))
        return f"{_b64(payload)}.{_b64(self._tag(self.keys[0], listing, payload))}"

    def open(self, cursor: str, *, listing: Listing, keys: tuple[str, ...]) -> dict[str, Any]:
        """The position sealed in ``cursor`` for exactly this ``listing``, with exactly the
        fields ``keys``; else ``InvalidCursor``."""
        if len(cursor) > MAX_CURSOR_CHARS or cursor.count(".") != 1:
            raise refused_cursor("malformed")
        encoded_payload, encoded_tag = cursor.split(".")
        try:
            payload, tag = _unb64(encoded_payload), _unb64(encoded_tag)
        except (ValueError, binascii.Error):  # UnicodeEncodeError is a ValueError
            raise refused_cursor("malformed") from None
        # Every key is tried, each compare in constant time.
        verified = False
        for key in self.keys:
            verified |= hmac.compare_digest(self._tag(key, listing, payload), tag)
        if not verified:
            raise refused_cursor("forged, altered, or issued for another listing or caller")
        try:
            position = json.loads(payload)
        except (ValueError, RecursionError):  # only if the key leaked: still a 400
            raise refused_cursor("verified, but not JSON") from None
        if not isinstance(position, dict) or set(position) != set(keys):
            raise refused_cursor("verified, but not a position of this listing")
        return position


def refused_cursor(reason: str) -> InvalidCursor:
    """Logged: a cursor that fails is a client bug or someone trying their luck."""
    log.warning("cursor refused: %s", reason, extra={"audit": True})
    return InvalidCursor("cursor is not one this server issued for this listing")


def cursor_sealer(settings: Settings) -> CursorSealer:
    """Keys from ``STORAGE_JWT_SECRET`` (sealing) and its previous values (opening)."""
    return CursorSealer.from_secrets([settings.jwt_secret, *settings.jwt_previous_secrets])
