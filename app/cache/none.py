"""No cache at all: for several processes sharing a database without Redis, where a cache in
each process could serve what another process already changed."""

from __future__ import annotations

from app.cache.base import CacheStatus


class NoCache:
    backend = "none"

    async def get(self, key: str) -> bytes | None:
        return None

    async def set(self, key: str, value: bytes, *, ttl_seconds: float) -> None:
        return None

    async def delete(self, *keys: str) -> None:
        return None

    async def generation(self, subject: str) -> str | None:
        return None  # nothing is ever cached

    async def begin_change(self, subject: str) -> str:
        return ""

    async def end_change(self, subject: str, fence: str | None = None) -> None:
        return None

    async def status(self) -> CacheStatus:
        return CacheStatus.OK

    async def close(self) -> None:
        return None
