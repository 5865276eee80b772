"""Whatever a client sends, the answer is never a 500 and every error is a problem."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.vfolders.schemas import VFolderCreate
from tests.support.server import clean_environment, serving

pytestmark = pytest.mark.slow

SERVICE_KEY = "fuzz-service-key-0123456789abcdef0123456789"
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
create_bodies = st.fixed_dictionaries(
    {},
    optional={
        "id": st.uuids().map(str) | st.text(max_size=40),
        "name": st.text(max_size=300),
        "volume": st.sampled_from(["local", "nope"]) | st.text(max_size=70),
        "owner_type": st.sampled_from(["user", "group"]) | st.text(max_size=8),
        "owner_id": st.text(max_size=300),
        "extra": json_values,
    },
)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    cwd: Path = tmp_path_factory.mktemp("fuzz")
    env = clean_environment(STORAGE_SERVICE_KEYS=SERVICE_KEY)
    with (
        serving(cwd=cwd, env=env) as server,
        httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {SERVICE_KEY}"}
        ) as client,
    ):
        yield client


def assert_sane(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["status"] == response.status_code
        assert body["type"].startswith("/problems/")


@FUZZ
@given(body=create_bodies)
def test_create_with_any_body(api: httpx.Client, body: dict[str, Any]) -> None:
    response = api.post("/v1/vfolders", json=body)
    assert_sane(response)
    if response.status_code == 201:
        # Whatever got in must be a valid vfolder by our own rules.
        VFolderCreate.model_validate({k: v for k, v in body.items() if k != "extra"})
        assert api.delete(f"/v1/vfolders/{response.json()['id']}").status_code == 204


@FUZZ
@given(raw=st.binary(max_size=200))
def test_create_with_any_bytes(api: httpx.Client, raw: bytes) -> None:
    assert_sane(api.post("/v1/vfolders", content=raw, headers={"content-type": "application/json"}))


@FUZZ
@given(segment=st.text(min_size=1, max_size=80), method=st.sampled_from(["GET", "PATCH", "DELETE"]))
def test_any_vfolder_path(api: httpx.Client, segment: str, method: str) -> None:
    path = f"/v1/vfolders/{quote(segment, safe='')}"
    body = json.dumps({"name": segment}) if method == "PATCH" else None
    assert_sane(api.request(method, path, content=body))


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["cursor", "limit", "volume", "owner_type", "owner_id", "name", "status"]),
        st.text(max_size=60),
    )
)
def test_list_with_any_query(api: httpx.Client, params: dict[str, str]) -> None:
    assert_sane(api.get("/v1/vfolders", params=params))


@FUZZ
@given(
    header=st.text(max_size=300).filter(
        lambda s: s.isascii() and s.isprintable() and s == s.strip()
    )
)
def test_any_authorization_header(api: httpx.Client, header: str) -> None:
    response = api.get("/v1/vfolders", headers={"Authorization": header})
    assert_sane(response)
    assert response.status_code == 401
