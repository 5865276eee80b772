"""In-process cache for a single node without Redis."""

from __future__ import annotations

import time
from collections import OrderedDict

from app.cache.base import CacheStatus

# Counters outlive anything that embeds them.
COUNTER_TTL = 7 * 24 * 3600.0


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
            self._entries.popitem(last=False)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._entries.pop(key, None)

    async def incr(self, key: str) -> None:
        current = await self.get(key)
        await self.set(key, str(int(current or b"0") + 1).encode(), ttl_seconds=COUNTER_TTL)

    async def status(self) -> CacheStatus:
        return CacheStatus.OK

    async def close(self) -> None:
        self._entries.clear()
