"""The committed spec is the contract: it must equal what the app serves, and be valid."""

from __future__ import annotations

import re
from typing import Any

import httpx
from openapi_spec_validator import validate

from app.cli import render_openapi_yaml
from tests.support.spec import committed_spec, parse_yaml

OPERATION_ID = re.compile(r"^[a-z]+(-[a-z]+)+$")


def committed() -> dict[str, Any]:
    return committed_spec()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict)
    ]


def test_committed_spec_matches_the_app() -> None:
    generated = render_openapi_yaml()
    assert parse_yaml(generated) == committed(), (
        "openapi/openapi.yaml is out of date: run `storage-proxy openapi` and commit it"
    )


async def test_served_spec_is_the_committed_one(client: httpx.AsyncClient) -> None:
    served = await client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == committed()


def test_spec_is_valid_openapi_3_1() -> None:
    spec = committed()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_operation_ids_are_stable_tag_verb_slugs() -> None:
    spec = committed()
    seen = set()
    for path, method, op in operations(spec):
        op_id = op["operationId"]
        assert OPERATION_ID.match(op_id), (path, method, op_id)
        assert op_id.startswith(op["tags"][0] + "-"), (path, method, op_id)
        assert op_id not in seen
        seen.add(op_id)


# tus capability discovery: clients (and browsers' preflights) ask before authenticating.
UNAUTHENTICATED_V1 = {"uploads-options"}


def test_v1_errors_are_declared_as_problem_json() -> None:
    for path, method, op in operations(committed()):
        if not path.startswith("/v1") or op["operationId"] in UNAUTHENTICATED_V1:
            continue
        responses = op["responses"]
        assert {"401", "422"} <= set(responses), (path, method)
        for status, response in responses.items():
            if int(status) >= 400:
                assert list(response["content"]) == ["application/problem+json"], (path, status)
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}
        assert op.get("security") == [{"HTTPBearer": []}], (path, method)
