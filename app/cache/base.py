"""The cache interface. A cache is an optimisation, never a source of truth: any method may
quietly do nothing when the backend is away, and callers fall back to the database."""

from __future__ import annotations

import enum
from typing import Protocol


class CacheStatus(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"


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

    async def incr(self, key: str) -> None:
        """Bump a counter (a version that other keys embed), creating it when absent."""
        ...

    async def status(self) -> CacheStatus: ...

    async def close(self) -> None: ...
