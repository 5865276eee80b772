"""Metadata cache: Redis when ``STORAGE_REDIS_URL`` is set, in-process otherwise."""

from app.cache.base import Cache, CacheStatus, CacheUnreachable
from app.cache.factory import build_cache

__all__ = ["Cache", "CacheStatus", "CacheUnreachable", "build_cache"]
