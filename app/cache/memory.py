"""In-process cache for a single node without Redis."""

from __future__ import annotations

import time
from collections import OrderedDict

from app.cache.base import FENCE_SECONDS, GENERATION_SECONDS, CacheStatus, new_token

# Outside the keys callers use: theirs name what they cache ("vfolder:…").
_GENERATION = "\x00generation:"
_FENCE = "\x00fence:"


class MemoryCache:
    backend = "memory"

    def __init__(self, *, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max_entries = max_entries

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, *, ttl_seconds: float) -> None:
        self._entries[key] = (time.monotonic() + ttl_seconds, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            # An evicted generation or fence is safe: a new generation only means misses,
            # and the change a fence guarded ends in this very process.
            self._entries.popitem(last=False)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._entries.pop(key, None)

    async def generation(self, subject: str) -> str | None:
        if await self.get(_FENCE + subject) is not None:
            return None
        current = await self.get(_GENERATION + subject)
        if current is None:
            current = new_token().encode()
            await self.set(_GENERATION + subject, current, ttl_seconds=GENERATION_SECONDS)
        return current.decode()

    async def begin_change(self, subject: str) -> str:
        fence = new_token()
        await self.set(_FENCE + subject, fence.encode(), ttl_seconds=FENCE_SECONDS)
        await self.set(_GENERATION + subject, new_token().encode(), ttl_seconds=GENERATION_SECONDS)
        return fence

    async def end_change(self, subject: str, fence: str | None = None) -> None:
        await self.set(_GENERATION + subject, new_token().encode(), ttl_seconds=GENERATION_SECONDS)
        if fence is not None and await self.get(_FENCE + subject) == fence.encode():
            await self.delete(_FENCE + subject)

    async def status(self) -> CacheStatus:
        return CacheStatus.OK

    async def close(self) -> None:
        self._entries.clear()
