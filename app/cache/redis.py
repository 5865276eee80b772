"""Redis cache shared by every proxy node. Survives Redis going away: requests bypass it (with
one warning per outage) and, because invalidations may have been lost meanwhile, every key of
this proxy is dropped before the cache is trusted again."""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cache.base import CacheStatus
from app.observability.logging import get_logger

log = get_logger(__name__)

RETRY_AFTER_SECONDS = 2.0
SOCKET_TIMEOUT_SECONDS = 0.5


class RedisCache:
    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str,
        on_availability_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._redis: Redis = Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            health_check_interval=30,
        )
        self._prefix = key_prefix
        self._on_change = on_availability_change or (lambda _available: None)
        self._available = True
        self._needs_flush = False
        self._retry_at = 0.0

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def _usable(self) -> bool:
        """False while an outage lasts; on recovery, first drops what may be stale."""
        if self._available and not self._needs_flush:
            return True
        if time.monotonic() < self._retry_at:
            return False
        try:
            async for key in self._redis.scan_iter(match=self._prefix + "*", count=1000):
                await self._redis.unlink(key)
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            return False
        self._needs_flush = False
        if not self._available:
            self._available = True
            log.warning("redis cache is back; stale entries dropped")
            self._on_change(True)
        return True

    def _mark_down(self, exc: Exception) -> None:
        self._needs_flush = True
        self._retry_at = time.monotonic() + RETRY_AFTER_SECONDS
        if self._available:
            self._available = False
            log.warning("redis cache unreachable, bypassing it: %s", exc)
            self._on_change(False)

    async def get(self, key: str) -> bytes | None:
        if not await self._usable():
            return None
        try:
            value = await self._redis.get(self._key(key))
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            return None
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, *, ttl_seconds: float) -> None:
        if not await self._usable():
            return
        try:
            await self._redis.set(self._key(key), value, px=max(1, int(ttl_seconds * 1000)))
        except (RedisError, OSError) as exc:
            self._mark_down(exc)

    async def delete(self, *keys: str) -> None:
        if not keys:
            return
        if not await self._usable():
            # Already marked for a full flush before the next use.
            return
        try:
            await self._redis.unlink(*(self._key(key) for key in keys))
        except (RedisError, OSError) as exc:
            self._mark_down(exc)

    async def incr(self, key: str) -> None:
        if not await self._usable():
            return  # the flush before the next use drops what the counter protected
        try:
            await self._redis.incr(self._key(key))
        except (RedisError, OSError) as exc:
            self._mark_down(exc)

    async def status(self) -> CacheStatus:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            return CacheStatus.DEGRADED
        self._retry_at = 0.0  # it answered: recover now rather than at the next retry slot
        return CacheStatus.OK if await self._usable() else CacheStatus.DEGRADED

    async def close(self) -> None:
        await self._redis.aclose()
