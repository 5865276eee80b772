"""Rows 1-4 of the reference: volumes, fs-usage, hwinfo, performance-metric; and the auth."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import SimpleNamespace

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.backendai.app import create_manager_app
from app.backendai.volumes import backend_name
from app.observability.metrics import Metrics
from tests.backendai.conftest import AUTH_HEADER, Target


def test_volumes_lists_every_key_the_manager_reads(target: Target) -> None:
    reply = target.call("GET", "/volumes")
    assert reply.status_code == 200
    volumes = reply.json()["volumes"]
    local = next(v for v in volumes if v["name"] == target.volume)
    assert {"name", "backend", "path", "fsprefix", "capabilities"} <= set(local)
    assert local["backend"] == "vfs"
    assert "vfolder" in local["capabilities"]


def test_fs_usage_reads_a_json_body_on_get(target: Target) -> None:
    reply = target.call("GET", "/folder/fs-usage", {"volume": target.volume})
    assert reply.status_code == 200
    usage = reply.json()
    assert isinstance(usage["capacity_bytes"], int) and usage["capacity_bytes"] > 0
    assert isinstance(usage["used_bytes"], int)


def test_hwinfo_has_the_three_keys(target: Target) -> None:
    reply = target.call("GET", "/volume/hwinfo", {"volume": target.volume})
    assert reply.status_code == 200
    assert reply.json() == {"status": "healthy", "status_info": None, "metadata": {}}


def test_performance_metric_is_an_error_the_manager_tolerates(target: Target) -> None:
    reply = target.call("GET", "/volume/performance-metric", {"volume": target.volume})
    assert not reply.is_success
    assert reply.status_code < 500


@pytest.mark.parametrize("secret", [None, "wrong-secret"])
def test_calls_without_the_secret_are_refused(target: Target, secret: str | None) -> None:
    headers = {} if secret is None else {AUTH_HEADER: secret}
    reply = httpx.get(target.manager_url + "/volumes", headers=headers)
    assert reply.status_code == 403


@pytest.mark.ours_only("walks the routes of our Manager-facing app")
def test_every_call_but_the_status_ones_needs_the_secret(target: Target) -> None:
    """One middleware guards the whole Manager-facing app, so a call added later is covered
    too; a path that is no call stays a 404."""
    wrong = {AUTH_HEADER: "wrong-secret"}
    routes = list(_api_routes(create_manager_app(Metrics()).routes))
    assert len(routes) > 20
    for route in routes:
        for method in route.methods or ():
            reply = httpx.request(method, target.manager_url + route.path, headers=wrong)
            expected = 200 if route.path in ("/", "/status") else 403
            assert reply.status_code == expected, (method, route.path, reply.text)
    assert httpx.get(target.manager_url + "/no/such/call", headers=wrong).status_code == 404


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """The app's routes, those of included routers too (recent FastAPI keeps them apart)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        else:
            included = getattr(getattr(route, "original_router", None), "routes", [])
            yield from _api_routes(included)


@pytest.mark.ours_better("the reference answers 403 text/plain: the Manager shows a bare status")
def test_refusals_carry_a_msg_the_manager_shows(target: Target) -> None:
    reply = httpx.get(target.manager_url + "/volumes", headers={AUTH_HEADER: "wrong"})
    assert reply.headers["content-type"] == "application/json"
    assert "msg" in reply.json()


@pytest.mark.ours_better("the reference answers a bare 500 for an unknown volume")
def test_an_unknown_volume_is_a_msg_not_a_500(target: Target) -> None:
    reply = target.call("GET", "/folder/fs-usage", {"volume": "no-such-volume"})
    assert 400 <= reply.status_code < 500
    assert reply.headers["content-type"] == "application/json"
    assert "no-such-volume" in reply.json()["msg"]


@pytest.mark.ours_only("the main listener of ours")
def test_the_manager_api_is_not_on_the_main_port(target: Target) -> None:
    reply = httpx.get(target.client_url + "/volumes", headers={AUTH_HEADER: target.secret})
    assert reply.status_code == 404


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("posix", "vfs"), ("ddn", "exascaler"), ("dellemc", "dellemc-onefs"), ("weka", "weka")],
)
def test_backends_are_named_as_the_manager_knows_them(ours: str, theirs: str) -> None:
    assert backend_name(SimpleNamespace(backend=ours)) == theirs
