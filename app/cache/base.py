"""The cache interface. A cache is an optimisation, never a source of truth: reads may quietly
miss when the backend is away, and callers fall back to the database.

Entries about one *subject* (a vfolder) are stored under that subject's current
**generation**, a random token. A change that other nodes must not miss (who may do what)
first raises a **fence** on the subject and draws a new generation (``begin_change``, which
fails loudly when the change cannot be announced), then, once committed, draws another
generation and lowers its fence (``end_change``). While a fence stands nothing about the
subject is cached or served from the cache, so no node can store the state of before the
change under a generation that outlives it. Generations never repeat, so losing one (eviction,
a flush) only costs a cache miss."""

from __future__ import annotations

import enum
import secrets
from typing import Protocol

# How long a fence stands when its change never says it ended (its node lost the cache
# between announcing the change and committing it): longer than any commit takes.
FENCE_SECONDS = 30.0
# Entries live far shorter than this; a generation that expires only costs misses.
GENERATION_SECONDS = 24 * 3600.0


class CacheStatus(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"


class CacheUnreachable(Exception):
    """The change could not be announced to the other nodes sharing the cache."""


def new_token() -> str:
    return secrets.token_hex(8)


class Cache(Protocol):
    backend: str

    async def get(self, key: str) -> bytes | None:
        """The cached value, or None when absent, expired or the backend is unreachable."""
        ...

    async def set(self, key: str, value: bytes, *, ttl_seconds: float) -> None: ...

    async def delete(self, *keys: str) -> None:
        """Invalidate keys. If the backend is unreachable, the cache guarantees the keys are
        dropped before it serves anything again."""
        ...

    async def generation(self, subject: str) -> str | None:
        """The token the subject's entries are stored under now; None when nothing about it
        may be cached or trusted (a change under way, or the backend unreachable)."""
        ...

    async def begin_change(self, subject: str) -> str:
        """Before committing a change to the subject: raise its fence and draw a new
        generation. Returns the fence's token; raises ``CacheUnreachable``."""
        ...

    async def end_change(self, subject: str, fence: str | None = None) -> None:
        """After the commit: draw a new generation and lower ``fence`` if it is still the
        one standing. Without a fence, a best-effort invalidation of the subject's entries.
        Raises ``CacheUnreachable``."""
        ...

    async def status(self) -> CacheStatus: ...

    async def close(self) -> None: ...
