from __future__ import annotations

from collections.abc import Callable

from app.cache.base import Cache
from app.cache.memory import MemoryCache
from app.cache.none import NoCache
from app.cache.redis import RedisCache


def build_cache(
    redis_url: str | None,
    *,
    key_prefix: str,
    on_availability_change: Callable[[bool], None] | None = None,
    local: bool = True,
) -> Cache:
    """Redis when configured (shared by every process and node); otherwise a cache in this
    process, unless ``local`` is off because other processes share the database."""
    if redis_url:
        return RedisCache(
            redis_url, key_prefix=key_prefix, on_availability_change=on_availability_change
        )
    return MemoryCache() if local else NoCache()
