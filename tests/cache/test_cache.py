"""The cache contract on the in-process cache and on real Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import anyio
import pytest
from redis.asyncio import Redis

from app.cache import Cache, CacheStatus, CacheUnreachable
from app.cache.memory import MemoryCache
from app.cache.redis import RedisCache
from tests.support.services import REDIS_HOST, REDIS_PORT, UNREACHABLE_REDIS_URL, redis_url_via
from tests.support.tcp_proxy import TcpProxy

UNREACHABLE_REDIS = UNREACHABLE_REDIS_URL


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    if request.param == "memory":
        built: Cache = MemoryCache(max_entries=100)
    else:
        url: str = request.getfixturevalue("redis")
        built = RedisCache(url, key_prefix=f"sp-test-{secrets.token_hex(6)}:")
    yield built
    await built.close()


async def test_set_get_delete(cache: Cache) -> None:
    assert await cache.get("k") is None
    await cache.set("k", b"v1", ttl_seconds=30)
    assert await cache.get("k") == b"v1"
    await cache.set("k", b"v2", ttl_seconds=30)
    assert await cache.get("k") == b"v2"
    await cache.delete("k", "never-set")
    assert await cache.get("k") is None
    assert await cache.status() is CacheStatus.OK


async def test_entries_expire(cache: Cache) -> None:
    await cache.set("short", b"v", ttl_seconds=0.05)
    await anyio.sleep(0.15)
    assert await cache.get("short") is None


async def test_memory_cache_is_bounded() -> None:
    cache = MemoryCache(max_entries=3)
    for i in range(5):
        await cache.set(f"k{i}", b"v", ttl_seconds=30)
    assert [await cache.get(f"k{i}") for i in range(5)] == [None, None, b"v", b"v", b"v"]


async def test_keys_are_prefixed_so_deployments_share_a_redis(redis: str) -> None:
    one = RedisCache(redis, key_prefix=f"sp-a-{secrets.token_hex(4)}:")
    two = RedisCache(redis, key_prefix=f"sp-b-{secrets.token_hex(4)}:")
    try:
        await one.set("k", b"one", ttl_seconds=30)
        assert await two.get("k") is None
    finally:
        await one.close()
        await two.close()


async def test_unreachable_redis_is_bypassed_and_reported() -> None:
    changes: list[bool] = []
    cache = RedisCache(UNREACHABLE_REDIS, key_prefix="x:", on_availability_change=changes.append)
    try:
        await cache.set("k", b"v", ttl_seconds=30)
        assert await cache.get("k") is None
        await cache.delete("k")
        assert await cache.status() is CacheStatus.DEGRADED
        assert changes == [False]
    finally:
        await cache.close()


async def test_recovery_drops_entries_whose_invalidation_was_lost(redis: str) -> None:
    """While a node cannot reach Redis its invalidations are lost; when Redis answers again,
    entries written before the outage must not be served."""
    proxy = TcpProxy(REDIS_HOST, REDIS_PORT)
    await proxy.start()
    prefix = f"sp-test-{secrets.token_hex(6)}:"
    changes: list[bool] = []
    cache = RedisCache(
        redis_url_via(proxy.url_host), key_prefix=prefix, on_availability_change=changes.append
    )
    raw: Redis = Redis.from_url(redis)
    try:
        await cache.set("vfolder:1:meta", b"old", ttl_seconds=60)
        await proxy.cut()
        await cache.delete("vfolder:1:meta")  # lost: Redis is out of reach
        assert await cache.get("vfolder:1:meta") is None  # bypassed, not an error
        assert await raw.get(prefix + "cache:vfolder:1:meta") == b"old"
        assert await cache.status() is CacheStatus.DEGRADED

        await proxy.start()
        assert await cache.status() is CacheStatus.OK
        assert await cache.get("vfolder:1:meta") is None
        assert await raw.get(prefix + "cache:vfolder:1:meta") is None
        assert changes == [False, True]
    finally:
        await cache.close()
        await raw.aclose()
        await proxy.cut()


# -- The change protocol: what another node may cache while a change is under way -----------


@pytest.fixture(params=["memory", "redis"])
async def two_nodes(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Cache, Cache]]:
    """Two nodes' views of one shared cache (one in-process cache seen twice for memory)."""
    if request.param == "memory":
        shared: Cache = MemoryCache(max_entries=100)
        yield shared, shared
        await shared.close()
        return
    url: str = request.getfixturevalue("redis")
    prefix = f"sp-test-{secrets.token_hex(6)}:"
    one, two = RedisCache(url, key_prefix=prefix), RedisCache(url, key_prefix=prefix)
    yield one, two
    await one.close()
    await two.close()


async def test_a_change_under_way_stops_every_node_caching(two_nodes: tuple[Cache, Cache]) -> None:
    writer, reader = two_nodes
    before = await reader.generation("vfolder:1")
    assert before is not None and await reader.generation("vfolder:1") == before
    fence = await writer.begin_change("vfolder:1")
    # The old state read now from the database must not be stored where it will be found.
    assert await reader.generation("vfolder:1") is None
    assert await reader.generation("vfolder:2") is not None  # other subjects unaffected
    await writer.end_change("vfolder:1", fence)
    after = await reader.generation("vfolder:1")
    assert after is not None and after != before


async def test_an_earlier_change_does_not_lower_a_later_fence(
    two_nodes: tuple[Cache, Cache],
) -> None:
    writer, reader = two_nodes
    first = await writer.begin_change("vfolder:1")
    second = await writer.begin_change("vfolder:1")
    await writer.end_change("vfolder:1", first)
    assert await reader.generation("vfolder:1") is None
    await writer.end_change("vfolder:1", second)
    assert await reader.generation("vfolder:1") is not None


async def test_a_change_is_refused_when_it_cannot_be_announced() -> None:
    cache = RedisCache(UNREACHABLE_REDIS, key_prefix="x:")
    try:
        with pytest.raises(CacheUnreachable):
            await cache.begin_change("vfolder:1")
        with pytest.raises(CacheUnreachable):
            await cache.end_change("vfolder:1")
        assert await cache.generation("vfolder:1") is None  # trusts nothing cached
    finally:
        await cache.close()


async def test_recovery_drops_cache_entries_only(redis: str) -> None:
    """The flush after an outage drops cached entries, never what other parts keep under the
    same prefix (upload locks) nor a change's fence."""
    proxy = TcpProxy(REDIS_HOST, REDIS_PORT)
    await proxy.start()
    prefix = f"sp-test-{secrets.token_hex(6)}:"
    cache = RedisCache(redis_url_via(proxy.url_host), key_prefix=prefix)
    other_node = RedisCache(redis, key_prefix=prefix)
    raw: Redis = Redis.from_url(redis)
    try:
        await raw.set(prefix + "upload-lock:u1", b"holder", px=60_000)
        await cache.set("vfolder:1:meta", b"old", ttl_seconds=60)
        await proxy.cut()
        assert await cache.get("vfolder:1:meta") is None
        fence = await other_node.begin_change("vfolder:1")
        await proxy.start()
        assert await cache.status() is CacheStatus.OK
        assert await raw.get(prefix + "cache:vfolder:1:meta") is None
        assert await raw.get(prefix + "upload-lock:u1") == b"holder"
        assert await cache.generation("vfolder:1") is None
        await other_node.end_change("vfolder:1", fence)
        assert await cache.generation("vfolder:1") is not None
    finally:
        await cache.close()
        await other_node.close()
        await raw.delete(prefix + "upload-lock:u1")
        await raw.aclose()
        await proxy.cut()
