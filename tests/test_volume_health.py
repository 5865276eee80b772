"""A volume whose storage system has a management API shows its reachability in
``GET /v1/volumes`` and in ``/health/ready`` (degraded, not failed, when it is silent), asked
at most once per cache period, with the API's own words and never our credentials."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from drivers.driver import Driver
from drivers.posix import posix_driver
from drivers.registry import Backend, register, unregister
from drivers.rest.client import VendorClient
from drivers.rest.health import RestManagement
from drivers.rest.options import RestApiOptions
from tests.support.app import SERVICE, client_with_volumes

ARRAY = "https://array.example"


class ManagedOptions(RestApiOptions):
    pass


class FakeArray:
    """The array's management API: answers its cluster call, or is down for maintenance."""

    def __init__(self) -> None:
        self.up = True
        self.router = respx.Router(assert_all_called=False)
        self.probe = self.router.get(f"{ARRAY}/api/cluster").mock(side_effect=self._cluster)

    def _cluster(self, request: httpx.Request) -> httpx.Response:
        if self.up:
            return httpx.Response(200, json={"name": "array-1"})
        return httpx.Response(503, json={"message": "controller failover in progress"})


@pytest.fixture
def array() -> Iterator[FakeArray]:
    fake = FakeArray()

    def build(root: Path, *, options: Mapping[str, Any] | ManagedOptions) -> Driver:
        opts = ManagedOptions.model_validate(options)
        driver = posix_driver(root)
        client = VendorClient(
            vendor="array", options=opts, transport=httpx.MockTransport(fake.router.handler)
        )
        driver.management = RestManagement(
            client,
            lambda: client.json("GET", "/api/cluster"),
            cache_seconds=opts.health_cache_seconds,
        )
        return driver

    register(Backend(name="managed", build=build, options=ManagedOptions))
    yield fake
    unregister("managed")


VOLUMES = """
[volumes.array]
driver = "managed"
path = "{path}"

[volumes.array.options]
endpoint = "https://array.example"
retries = 0
health_cache_seconds = {cache}
"""


async def test_reachability_is_shown_and_a_silent_api_only_degrades(
    tmp_path: Path, array: FakeArray
) -> None:
    volumes = VOLUMES.format(path=tmp_path / "array", cache=0)
    async with client_with_volumes(tmp_path, volumes) as (client, _settings):
        listed = (await client.get("/v1/volumes", headers=SERVICE)).json()["items"]
        assert listed[0]["management_api"]["reachable"] is True
        ready = (await client.get("/health/ready")).json()
        assert ready["checks"]["management-api:array"] == {"status": "ok", "detail": None}
        array.up = False
        shown = (await client.get("/v1/volumes/array", headers=SERVICE)).json()
        assert shown["management_api"]["reachable"] is False
        assert "controller failover in progress" in shown["management_api"]["detail"]
        answer = await client.get("/health/ready")
        assert answer.status_code == 200  # files still move over the mount
        check = answer.json()["checks"]["management-api:array"]
        assert check["status"] == "degraded" and "failover" in check["detail"]
        assert answer.json()["status"] == "degraded"


async def test_a_scrape_storm_asks_the_array_once_per_period(
    tmp_path: Path, array: FakeArray
) -> None:
    volumes = VOLUMES.format(path=tmp_path / "array", cache=60)
    async with client_with_volumes(tmp_path, volumes) as (client, _settings):
        for _ in range(10):
            assert (await client.get("/health/ready")).status_code == 200
            await client.get("/v1/volumes", headers=SERVICE)
        assert array.probe.call_count == 1


async def test_a_volume_without_a_management_api_says_null(tmp_path: Path) -> None:
    volumes = f'[volumes.plain]\ndriver = "posix"\npath = "{tmp_path / "plain"}"\n'
    async with client_with_volumes(tmp_path, volumes) as (client, _settings):
        listed = (await client.get("/v1/volumes", headers=SERVICE)).json()["items"]
        assert listed[0]["management_api"] is None
        checks = (await client.get("/health/ready")).json()["checks"]
        assert not any(name.startswith("management-api:") for name in checks)
