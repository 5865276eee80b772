"""Request ids, metrics with route templates, and no bare 500s."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.deps import get_volume_service
from app.main import create_app
from app.volumes.service import VolumeService
from tests.support.app import SERVICE, running


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def app_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as client:
        yield client


async def test_request_id_is_generated_or_echoed(client: httpx.AsyncClient) -> None:
    generated = await client.get("/health/live")
    assert len(generated.headers["x-request-id"]) == 32
    echoed = await client.get("/health/live", headers={"X-Request-ID": "trace-42.a:b"})
    assert echoed.headers["x-request-id"] == "trace-42.a:b"
    # Ids that could forge log lines or headers are replaced, not echoed.
    for hostile_id in ('x\xe9 "evil"', "a" * 200, "<script>"):
        hostile = await client.get(
            "/health/live", headers={b"X-Request-ID": hostile_id.encode("latin-1")}
        )
        assert len(hostile.headers["x-request-id"]) == 32


async def test_metrics_use_route_templates_and_problem_types(client: httpx.AsyncClient) -> None:
    await client.get("/v1/vfolders/7a1f0000-0000-4000-8000-000000000000", headers=SERVICE)
    await client.get("/v1/volumes", headers=SERVICE)
    await client.get("/no/such/route")
    metrics = (await client.get("/metrics")).text
    assert (
        'backendai_api_request_count_total{domain="vfolders",endpoint="/v1/vfolders/{vfolder_id}",'
        'error_detail="/problems/vfolder-not-found",method="GET",operation="vfolders-get",'
        'status_code="404"} 1.0'
    ) in metrics
    assert (
        'backendai_api_request_count_total{domain="volumes",endpoint="/v1/volumes",'
        'error_detail="",method="GET",operation="volumes-list",status_code="200"} 1.0'
    ) in metrics
    assert 'endpoint="<unmatched>"' in metrics
    assert "7a1f0000" not in metrics
    assert "backendai_api_request_duration_sec_bucket" in metrics


class ExplodingVolumeService(VolumeService):
    async def list(self) -> object:  # type: ignore[override]
        raise RuntimeError("secret internal detail")


async def test_unexpected_errors_are_problem_internal_with_request_id(
    app: FastAPI, app_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    app.dependency_overrides[get_volume_service] = lambda: ExplodingVolumeService.__new__(
        ExplodingVolumeService
    )
    response = await app_client.get("/v1/volumes", headers=SERVICE)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/problems/internal"
    assert body["request_id"] == response.headers["x-request-id"]
    assert "secret internal detail" not in response.text
    assert any("secret internal detail" in (r.exc_text or "") for r in caplog.records)


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["type"] == "/problems/not-found"
    wrong = await client.put("/v1/volumes", headers=SERVICE)
    assert wrong.status_code == 405
    assert wrong.json()["type"] == "/problems/method-not-allowed"


async def test_malformed_json_body_is_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/vfolders",
        content=b'{"name": ',
        headers={**SERVICE, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["type"] == "/problems/validation"


async def test_absurd_bodies_are_refused_before_buffering(client: httpx.AsyncClient) -> None:
    huge = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'", "volume": "local"}'
    declared = await client.post(
        "/v1/vfolders", content=huge, headers={**SERVICE, "content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json()["type"] == "/problems/content-too-large"
    assert declared.json()["request_id"] == declared.headers["x-request-id"]

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 65536):
            yield huge[start : start + 65536]

    streamed = await client.post(
        "/v1/vfolders", content=chunked(), headers={**SERVICE, "content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert streamed.headers["content-type"] == "application/problem+json"
