"""Vfolder reads go through the cache; writes invalidate it; a missing Redis only degrades."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings
from tests.cache.test_cache import UNREACHABLE_REDIS
from tests.support.app import SERVICE, client_for, make_settings
from tests.support.services import REDIS_HOST, REDIS_PORT, redis_url_via
from tests.support.tcp_proxy import TcpProxy


async def test_two_nodes_sharing_redis_never_serve_stale_names(
    tmp_path: Path, database_url: str, redis: str
) -> None:
    settings = make_settings(data_dir=tmp_path / "data", database_url=database_url, redis_url=redis)
    async with client_for(settings) as node_a, client_for(settings) as node_b:
        created = await node_a.post(
            "/v1/vfolders",
            json={"name": "before", "volume": "local", "owner_id": "alice"},
            headers=SERVICE,
        )
        vfolder_id = created.json()["id"]
        # Node B reads (and caches) the vfolder; node A renames it.
        assert (await node_b.get(f"/v1/vfolders/{vfolder_id}", headers=SERVICE)).json()[
            "name"
        ] == "before"
        renamed = await node_a.patch(
            f"/v1/vfolders/{vfolder_id}", json={"name": "after"}, headers=SERVICE
        )
        assert renamed.status_code == 200
        got = await node_b.get(f"/v1/vfolders/{vfolder_id}", headers=SERVICE)
        assert got.json()["name"] == "after"

        assert (await node_a.delete(f"/v1/vfolders/{vfolder_id}", headers=SERVICE)).status_code
        got = await node_b.get(f"/v1/vfolders/{vfolder_id}", headers=SERVICE)
        assert got.json()["status"] == "deleted"
        mount = await node_b.get(f"/v1/vfolders/{vfolder_id}/mount", headers=SERVICE)
        assert mount.status_code == 410


async def test_redis_going_away_at_run_time_only_degrades(
    tmp_path: Path, database_url: str, redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = TcpProxy(REDIS_HOST, REDIS_PORT)
    await proxy.start()
    settings: Settings = make_settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url_via(proxy.url_host),
    )
    try:
        async with client_for(settings) as client:
            created = await client.post(
                "/v1/vfolders",
                json={"name": "cached", "volume": "local", "owner_id": "alice"},
                headers=SERVICE,
            )
            vfolder_id = created.json()["id"]
            assert (await client.get(f"/v1/vfolders/{vfolder_id}", headers=SERVICE)).is_success
            assert (await client.get("/health/ready")).json()["status"] == "ok"

            await proxy.cut()
            got = await client.get(f"/v1/vfolders/{vfolder_id}", headers=SERVICE)
            assert got.status_code == 200
            renamed = await client.patch(
                f"/v1/vfolders/{vfolder_id}", json={"name": "renamed"}, headers=SERVICE
            )
            assert renamed.status_code == 200
            got = await client.get(f"/v1/vfolders/{vfolder_id}", headers=SERVICE)
            assert got.json()["name"] == "renamed"
            ready = await client.get("/health/ready")
            assert ready.status_code == 200
            assert ready.json()["status"] == "degraded"
            assert ready.json()["checks"]["cache"]["status"] == "degraded"
            assert "storage_cache_available 0.0" in (await client.get("/metrics")).text
            assert any("redis cache unreachable" in r.getMessage() for r in caplog.records)

            await proxy.start()
            assert (await client.get("/health/ready")).json()["status"] == "ok"
            # The rename's invalidation was lost in the outage; the stale entry must not win.
            got = await client.get(f"/v1/vfolders/{vfolder_id}", headers=SERVICE)
            assert got.json()["name"] == "renamed"
            assert "storage_cache_available 1.0" in (await client.get("/metrics")).text
    finally:
        await proxy.cut()


async def test_unreachable_redis_from_the_start_only_degrades(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(
        data_dir=tmp_path / "data", database_url=database_url, redis_url=UNREACHABLE_REDIS
    )
    async with client_for(settings) as client:
        created = await client.post(
            "/v1/vfolders",
            json={"name": "no-cache", "volume": "local", "owner_id": "alice"},
            headers=SERVICE,
        )
        assert created.status_code == 201
        assert (await client.get("/health/ready")).json()["status"] == "degraded"
