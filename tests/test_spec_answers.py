"""What the spec fuzz (tests/test_spec_fuzz.py) found, pinned as quick attacks: whatever the
route, the answer is one the committed spec documents for it (status and content type)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.app import SERVICE
from tests.support.spec import committed_spec

PROBLEM = "application/problem+json"

# A body each JSON operation accepts, so the request gets past validation to the vfolder.
VALID_BODIES: dict[str, dict[str, Any]] = {
    "VFolderCreate": {"name": "copy", "volume": "local", "owner_id": "alice"},
    "VFolderUpdate": {"name": "renamed"},
    "MkdirRequest": {"path": "d"},
    "MoveRequest": {"source": "a.txt", "destination": "b.txt"},
    "DeleteRequest": {"paths": ["a.txt"]},
    "TransferTokenCreate": {"operation": "download", "path": "a.txt"},
    "GrantSet": {"mode": "ro"},
    "QuotaLimits": {"limit_bytes": 10},
    "SnapshotCreate": {"name": "snap"},
    "SnapshotRestore": {"path": "a.txt"},
}
PATH_VALUES = {
    "path": "a.txt",
    "upload_id": str(uuid.uuid4()),
    "grantee_type": "user",
    "grantee_id": "bob",
    "name": "snap",
    "scope_type": "vfolder",
}


def committed_operations() -> list[tuple[str, str, dict[str, Any]]]:
    spec = committed_spec()
    return [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def json_body_schema(operation: dict[str, Any]) -> str | None:
    content = operation.get("requestBody", {}).get("content", {})
    ref: str | None = content.get("application/json", {}).get("schema", {}).get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


def assert_documented(response: httpx.Response, label: str, operation: dict[str, Any]) -> None:
    responses = operation["responses"]
    status = str(response.status_code)
    assert status in responses, f"{label} answered an undocumented {status}: {response.text}"
    if response.status_code >= 400:
        assert response.headers["content-type"] == PROBLEM, (label, response.text)
        assert PROBLEM in responses[status]["content"], label


async def test_every_route_of_a_deleted_vfolder_answers_as_documented(
    client: httpx.AsyncClient,
) -> None:
    """A Manager keeps using the id of a vfolder it deleted: every route answers 410 (or what
    the route documents), never a status the spec does not list."""
    created = await client.post(
        "/v1/vfolders",
        json={"name": "gone", "volume": "local", "owner_id": "alice"},
        headers=SERVICE,
    )
    vfolder_id = created.json()["id"]
    assert (await client.delete(f"/v1/vfolders/{vfolder_id}", headers=SERVICE)).status_code == 204

    gone = 0
    for path, method, operation in committed_operations():
        if not path.startswith("/v1/vfolders/{vfolder_id}"):
            continue
        url = path.format(vfolder_id=vfolder_id, scope_id=vfolder_id, **PATH_VALUES)
        headers = {**SERVICE, "Tus-Resumable": "1.0.0"}
        schema_name = json_body_schema(operation)
        body = VALID_BODIES[schema_name] if schema_name else None
        response = await client.request(method.upper(), url, json=body, headers=headers)
        assert_documented(response, f"{method.upper()} {path}", operation)
        gone += response.status_code == 410
    # Not a vacuous pass: most of them did reach the deleted vfolder.
    assert gone >= 20


async def test_a_body_that_is_not_utf8_json_answers_a_documented_problem(
    client: httpx.AsyncClient,
) -> None:
    """Bytes that cannot be decoded as JSON text, on every operation that takes JSON: 400 or
    422, as the operation documents, never an undocumented status."""
    vfolder_id = str(uuid.uuid4())
    for path, method, operation in committed_operations():
        if json_body_schema(operation) is None:
            continue
        url = path.format(vfolder_id=vfolder_id, scope_id=vfolder_id, **PATH_VALUES)
        response = await client.request(
            method.upper(),
            url,
            content=b'{"name": "\xff\xfe"}',
            headers={**SERVICE, "Content-Type": "application/json"},
        )
        assert response.status_code in (400, 422), response.text
        assert_documented(response, f"{method.upper()} {path}", operation)
