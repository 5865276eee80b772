"""Redis cache shared by every proxy node. Survives Redis going away: reads bypass it (with
one warning per outage), changes that must be announced fail loudly (``CacheUnreachable``),
and, because best-effort invalidations may have been lost meanwhile, every cached entry of
this proxy is dropped before the cache is trusted again.

Keys under the configured prefix: ``cache:<key>`` for entries (the only ones that recovery
drops), ``generation:{<subject>}`` and ``fence:{<subject>}`` for the change protocol of
``app.cache.base`` (one hash tag per subject, so a cluster keeps both on one shard). Other
keys under the prefix (upload locks) are not the cache's to touch."""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cache.base import (
    FENCE_SECONDS,
    GENERATION_SECONDS,
    CacheStatus,
    CacheUnreachable,
    new_token,
)
from app.observability.logging import get_logger

log = get_logger(__name__)

RETRY_AFTER_SECONDS = 2.0
SOCKET_TIMEOUT_SECONDS = 0.5

# KEYS: generation, fence. ARGV: a fresh generation, its lifetime (ms).
_CURRENT_GENERATION = """
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""
# KEYS: generation, fence. ARGV: a fresh generation, its lifetime, the fence, its lifetime.
_BEGIN_CHANGE = """
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# KEYS: generation, fence. ARGV: a fresh generation, its lifetime, the fence to lower or ''.
_END_CHANGE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


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
        self._current_generation = self._redis.register_script(_CURRENT_GENERATION)
        self._begin_change = self._redis.register_script(_BEGIN_CHANGE)
        self._end_change = self._redis.register_script(_END_CHANGE)

    def _key(self, key: str) -> str:
        return f"{self._prefix}cache:{key}"

    def _subject_keys(self, subject: str) -> list[str]:
        return [f"{self._prefix}generation:{{{subject}}}", f"{self._prefix}fence:{{{subject}}}"]

    async def _usable(self) -> bool:
        """False while an outage lasts; on recovery, first drops what may be stale."""
        if self._available and not self._needs_flush:
            return True
        if time.monotonic() < self._retry_at:
            return False
        try:
            async for key in self._redis.scan_iter(match=self._key("*"), count=1000):
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
            await self._redis.set(self._key(key), value, px=_ms(ttl_seconds))
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

    async def generation(self, subject: str) -> str | None:
        if not await self._usable():
            return None  # cut off: this node cannot know what changed, so it trusts nothing
        try:
            current = await self._current_generation(
                keys=self._subject_keys(subject), args=[new_token(), _ms(GENERATION_SECONDS)]
            )
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            return None
        return current.decode() if isinstance(current, bytes) else None

    async def begin_change(self, subject: str) -> str:
        if not await self._usable():
            raise CacheUnreachable("the redis cache is unreachable from this node")
        fence = new_token()
        try:
            await self._begin_change(
                keys=self._subject_keys(subject),
                args=[new_token(), _ms(GENERATION_SECONDS), fence, _ms(FENCE_SECONDS)],
            )
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            raise CacheUnreachable(f"the redis cache is unreachable from this node: {exc}") from exc
        return fence

    async def end_change(self, subject: str, fence: str | None = None) -> None:
        if not await self._usable():
            raise CacheUnreachable("the redis cache is unreachable from this node")
        try:
            await self._end_change(
                keys=self._subject_keys(subject),
                args=[new_token(), _ms(GENERATION_SECONDS), fence or ""],
            )
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            raise CacheUnreachable(f"the redis cache is unreachable from this node: {exc}") from exc

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
