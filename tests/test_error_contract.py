"""Whatever a client sends, the answer is a documented one: every error is an
``application/problem+json`` body (the server's own refusals included: unknown routes, wrong
methods, oversized bodies), and every status an operation answers here is one that
``openapi/openapi.yaml`` lists for it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.app import SERVICE, bearer, client_for, make_settings, user_token
from tests.support.observed import assert_documented, observing
from tests.support.spec import committed_spec

ALICE = bearer(user_token("alice"))
MIB = 1024 * 1024


@pytest.fixture(scope="module", autouse=True)
def every_status_seen_here_is_documented() -> Iterator[None]:
    with observing() as seen:
        yield
    assert_documented(seen)


@pytest.fixture
async def vfolder(client: httpx.AsyncClient) -> AsyncIterator[str]:
    made = await client.post("/v1/vfolders", json={"name": "c", "volume": "local"}, headers=ALICE)
    assert made.status_code == 201, made.text
    yield str(made.json()["id"])


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.text
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["type"].startswith("/problems/")
    return problem


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 64 * 1024):
        yield data[start : start + 64 * 1024]


@pytest.mark.parametrize("framing", ["declared", "chunked"])
async def test_a_batch_of_2_mib_is_a_413_problem(
    client: httpx.AsyncClient, vfolder: str, framing: str
) -> None:
    body = b'{"paths": [' + b",".join([b'"' + b"x" * 200 + b'"'] * 10_000) + b"]}"
    assert len(body) > 1.5 * MIB
    response = await client.post(
        f"/v1/vfolders/{vfolder}/delete",
        content=body if framing == "declared" else _chunks(body),
        headers={**ALICE, "content-type": "application/json"},
    )
    assert assert_problem(response, 413)["type"] == "/problems/content-too-large"


async def test_an_oversized_json_body_is_a_413_problem_on_every_json_operation(
    client: httpx.AsyncClient, vfolder: str
) -> None:
    padding = b" " * (2 * MIB)
    for method, url in [
        ("POST", "/v1/vfolders"),
        ("PATCH", f"/v1/vfolders/{vfolder}"),
        ("POST", f"/v1/vfolders/{vfolder}/mkdir"),
        ("POST", f"/v1/vfolders/{vfolder}/move"),
        ("PUT", f"/v1/vfolders/{vfolder}/grants/user/bob"),
        ("POST", f"/v1/vfolders/{vfolder}/clone"),
        ("PUT", "/v1/quotas/user/alice?volume=local"),
    ]:
        response = await client.request(
            method,
            url,
            content=b"{}" + padding,
            headers={**SERVICE, "content-type": "application/json"},
        )
        assert_problem(response, 413)


def _documented_methods() -> dict[str, set[str]]:
    spec = committed_spec()
    return {path: {m.upper() for m in item} for path, item in spec["paths"].items()}


async def test_a_wrong_method_is_a_405_problem_whose_allow_lists_every_method_of_the_path(
    client: httpx.AsyncClient, vfolder: str
) -> None:
    """``PUT /v1/vfolders`` answered ``Allow: POST`` although GET lists vfolders."""
    values = {"vfolder_id": vfolder, "path": "a/b.txt", "volume": "local"}
    for template, methods in _documented_methods().items():
        url = re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), template)
        for wrong in sorted({"PUT", "PATCH", "DELETE", "POST"} - methods)[:1]:
            response = await client.request(wrong, url, headers=ALICE)
            assert_problem(response, 405)
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            assert allowed == methods, (template, wrong)


@pytest.mark.parametrize(
    "url", ["/nope", "/v1", "/v1/nope", "/v1/vfolders/x/y/z", "/v1/vfolders/../../etc/passwd"]
)
async def test_an_unknown_route_is_a_404_problem(client: httpx.AsyncClient, url: str) -> None:
    assert_problem(await client.get(url, headers=ALICE), 404)


async def test_broken_json_and_wrong_types_are_422_problems(
    client: httpx.AsyncClient, vfolder: str
) -> None:
    broken = await client.post(
        "/v1/vfolders", content=b'{"name": ', headers={**ALICE, "content-type": "application/json"}
    )
    assert_problem(broken, 422)
    wrong = await client.post(f"/v1/vfolders/{vfolder}/mkdir", json={"path": 7}, headers=ALICE)
    assert_problem(wrong, 422)
    bad_id = await client.get("/v1/vfolders/not-a-uuid", headers=ALICE)
    assert_problem(bad_id, 422)


async def test_a_refused_cors_preflight_is_a_problem_too(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        cors_allow_origins=["https://app.example"],
    )
    async with client_for(settings) as client:
        refused = await client.options(
            "/v1/vfolders",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert assert_problem(refused, 400)["detail"] == "Disallowed CORS origin"
        allowed = await client.options(
            "/v1/vfolders",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
