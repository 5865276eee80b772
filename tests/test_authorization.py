"""Who may do what: one table, every principal kind x ownership x grant x operation,
checked through the HTTP API on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from app.auth.principal import Role
from app.permissions.policy import VFolderOperation
from tests.support.app import SERVICE, bearer, client_for, make_settings, user_token
from tests.support.observed import assert_documented, observing

OK = "ok"


@dataclass(frozen=True)
class Scenario:
    """A caller and a vfolder's ownership and sharing, as seen by that caller."""

    caller: dict[str, str]
    owner_type: str = "user"
    owner_id: str = "owner"
    group_mode: str = "rw"
    grants: dict[tuple[str, str], str] = field(default_factory=dict)
    # A transfer token for the whole vfolder, minted by the owner, replaces ``caller``.
    transfer: str | None = None


CALLER = bearer(user_token("caller", "team"))
SCENARIOS: dict[str, Scenario] = {
    "service-key": Scenario(SERVICE),
    "admin": Scenario(bearer(user_token("root", role=Role.ADMIN))),
    "owner": Scenario(bearer(user_token("owner"))),
    "stranger": Scenario(CALLER),
    "user-grant-ro": Scenario(CALLER, grants={("user", "caller"): "ro"}),
    "user-grant-rw": Scenario(CALLER, grants={("user", "caller"): "rw"}),
    "user-grant-rwd": Scenario(CALLER, grants={("user", "caller"): "rwd"}),
    "group-grant-ro": Scenario(CALLER, grants={("group", "team"): "ro"}),
    "group-grant-rwd": Scenario(CALLER, grants={("group", "team"): "rwd"}),
    "grant-to-other-group": Scenario(CALLER, grants={("group", "other"): "rwd"}),
    "strongest-of-two": Scenario(
        CALLER, grants={("user", "caller"): "ro", ("group", "team"): "rw"}
    ),
    "group-member-ro": Scenario(CALLER, "group", "team", group_mode="ro"),
    "group-member-rw": Scenario(CALLER, "group", "team", group_mode="rw"),
    "group-member-rwd": Scenario(CALLER, "group", "team", group_mode="rwd"),
    "group-manager": Scenario(
        bearer(user_token("caller", "team", managed_groups=["team"])),
        "group",
        "team",
        group_mode="ro",
    ),
    "acting-for-stranger": Scenario({**SERVICE, "X-Act-As-User": "caller"}),
    "acting-for-owner": Scenario({**SERVICE, "X-Act-As-User": "owner"}),
    "transfer-download": Scenario({}, transfer="download"),
    "transfer-upload": Scenario({}, transfer="upload"),
}

RO_OK = {"user-grant-ro", "group-grant-ro", "strongest-of-two", "group-member-ro"}
RW_OK = {"user-grant-rw", "strongest-of-two", "group-member-rw"}
RWD_OK = {"user-grant-rwd", "group-grant-rwd", "group-member-rwd"}
ALL_POWER = {"service-key", "admin", "owner", "acting-for-owner"}
INVISIBLE = {"stranger", "grant-to-other-group", "acting-for-stranger"}


def expect(ok: set[str]) -> dict[str, str | int]:
    """``ok`` may; the invisible get 404; everyone else with some mode gets 403."""
    return {name: OK if name in ok else 404 if name in INVISIBLE else 403 for name in SCENARIOS}


TABLE: dict[VFolderOperation, dict[str, str | int]] = {
    VFolderOperation.READ: expect(
        ALL_POWER | RO_OK | RW_OK | RWD_OK | {"group-manager", "transfer-download"}
    ),
    VFolderOperation.MOUNT: expect(ALL_POWER | RO_OK | RW_OK | RWD_OK | {"group-manager"}),
    VFolderOperation.WRITE_FILES: expect(ALL_POWER | RW_OK | RWD_OK | {"transfer-upload"}),
    VFolderOperation.DELETE_FILES: expect(ALL_POWER | RWD_OK),
    VFolderOperation.SHARE: expect(ALL_POWER | {"group-manager"}),
    VFolderOperation.RENAME: expect(ALL_POWER | {"group-manager"}),
    VFolderOperation.DELETE: expect(ALL_POWER | {"group-manager"}),
    VFolderOperation.SET_QUOTA: expect(ALL_POWER | {"group-manager"}),
    VFolderOperation.RECONCILE: expect(ALL_POWER | RW_OK | RWD_OK),
}


def test_every_operation_has_a_row() -> None:
    assert set(TABLE) == set(VFolderOperation)
    for row in TABLE.values():
        assert set(row) == set(SCENARIOS)


Request = Callable[[httpx.AsyncClient, str, dict[str, str]], Awaitable[httpx.Response]]

REQUESTS: dict[VFolderOperation, Request] = {
    VFolderOperation.READ: lambda c, v, h: c.get(f"{v}/files/seed.txt", headers=h),
    VFolderOperation.MOUNT: lambda c, v, h: c.get(f"{v}/mount", headers=h),
    VFolderOperation.WRITE_FILES: lambda c, v, h: c.put(f"{v}/files/new", content=b"x", headers=h),
    VFolderOperation.DELETE_FILES: lambda c, v, h: c.post(
        f"{v}/delete", json={"paths": ["seed.txt"]}, headers=h
    ),
    VFolderOperation.SHARE: lambda c, v, h: c.get(f"{v}/grants", headers=h),
    VFolderOperation.RENAME: lambda c, v, h: c.patch(
        v, json={"name": f"renamed-{uuid.uuid4().hex[:6]}"}, headers=h
    ),
    VFolderOperation.DELETE: lambda c, v, h: c.delete(v, headers=h),
    VFolderOperation.SET_QUOTA: lambda c, v, h: c.put(
        f"/v1/quotas/vfolder/{v.rsplit('/', 1)[1]}", json={"limit_bytes": 10**9}, headers=h
    ),
    VFolderOperation.RECONCILE: lambda c, v, h: c.post(f"{v}/reconcile", headers=h),
}


async def _caller(client: httpx.AsyncClient, url: str, scenario: Scenario) -> dict[str, str]:
    if scenario.transfer is None:
        return scenario.caller
    minted = await client.post(
        f"{url}/transfer-tokens",
        json={"operation": scenario.transfer, "path": "", "prefix": True},
        headers={**SERVICE, "X-Act-As-User": "owner"},
    )
    assert minted.status_code == 201, minted.text
    return bearer(minted.json()["token"])


async def _setup(client: httpx.AsyncClient, scenario: Scenario) -> str:
    created = await client.post(
        "/v1/vfolders",
        json={
            "name": f"vf-{uuid.uuid4().hex[:8]}",
            "volume": "local",
            "owner_type": scenario.owner_type,
            "owner_id": scenario.owner_id,
        },
        headers=SERVICE,
    )
    url = f"/v1/vfolders/{created.json()['id']}"
    await client.patch(url, json={"group_mode": scenario.group_mode}, headers=SERVICE)
    for (grantee_type, grantee_id), mode in scenario.grants.items():
        granted = await client.put(
            f"{url}/grants/{grantee_type}/{grantee_id}", json={"mode": mode}, headers=SERVICE
        )
        assert granted.status_code == 201, granted.text
    await client.put(f"{url}/files/seed.txt", content=b"seed", headers=SERVICE)
    return url


@pytest.mark.parametrize("scenario_name", sorted(SCENARIOS))
async def test_authorization_table(client: httpx.AsyncClient, scenario_name: str) -> None:
    scenario = SCENARIOS[scenario_name]
    # Destructive operations last, each on a fresh vfolder so earlier ones do not interfere.
    for operation in sorted(TABLE, key=lambda op: op is VFolderOperation.DELETE):
        url = await _setup(client, scenario)
        response = await REQUESTS[operation](client, url, await _caller(client, url, scenario))
        expected = TABLE[operation][scenario_name]
        where = f"{scenario_name} {operation.value}: {response.status_code} {response.text}"
        if expected == OK:
            assert response.is_success, where
            if operation is VFolderOperation.DELETE_FILES:
                assert response.json()["results"][0]["status"] == "deleted", where
        else:
            assert response.status_code == expected, where
            assert response.headers["content-type"] == "application/problem+json"
            if scenario.transfer is not None:
                assert response.json()["type"] == "/problems/transfer-token-scope", where


async def test_listing_shows_the_callers_mode_and_filters_by_it(
    client: httpx.AsyncClient,
) -> None:
    modes = {}
    for name in ("user-grant-ro", "user-grant-rw", "group-member-rwd", "stranger"):
        url = await _setup(client, SCENARIOS[name])
        modes[url.rsplit("/", 1)[1]] = name
    listed = (await client.get("/v1/vfolders", headers=CALLER)).json()["items"]
    seen = {modes[v["id"]]: v["mode"] for v in listed if v["id"] in modes}
    assert seen == {"user-grant-ro": "ro", "user-grant-rw": "rw", "group-member-rwd": "rwd"}
    rw = (await client.get("/v1/vfolders", params={"mode": "rw"}, headers=CALLER)).json()
    assert {modes[v["id"]] for v in rw["items"] if v["id"] in modes} == {
        "user-grant-rw",
        "group-member-rwd",
    }


async def test_revocation_holds_on_the_next_request(client: httpx.AsyncClient) -> None:
    url = await _setup(client, SCENARIOS["user-grant-rw"])
    assert (await client.get(f"{url}/files/seed.txt", headers=CALLER)).status_code == 200
    revoked = await client.delete(f"{url}/grants/user/caller", headers=SERVICE)
    assert revoked.status_code == 204
    assert (await client.get(f"{url}/files/seed.txt", headers=CALLER)).status_code == 404
    again = await client.delete(f"{url}/grants/user/caller", headers=SERVICE)
    assert again.status_code == 404 and again.json()["type"] == "/problems/grant-not-found"
    metrics = (await client.get("/metrics")).text
    assert 'storage_access_denied_total{operation="read",reason="no-access"}' in metrics
    assert 'storage_grant_changes_total{action="revoke"} 1.0' in metrics


@pytest.mark.parametrize("cache", ["memory", "redis"])
async def test_cold_and_warm_caches_give_the_same_answers(
    tmp_path: Path, database_url: str, cache: str, request: pytest.FixtureRequest
) -> None:
    redis = request.getfixturevalue("redis") if cache == "redis" else None
    settings = make_settings(data_dir=tmp_path / "data", database_url=database_url, redis_url=redis)
    async with client_for(settings) as client:
        for name, scenario in SCENARIOS.items():
            url = await _setup(client, scenario)
            caller = await _caller(client, url, scenario)
            for operation in (VFolderOperation.READ, VFolderOperation.MOUNT):
                cold = await REQUESTS[operation](client, url, caller)
                warm = await REQUESTS[operation](client, url, caller)
                assert cold.status_code == warm.status_code, (name, operation)
                expected = TABLE[operation][name]
                assert warm.is_success if expected == OK else warm.status_code == expected, (
                    name,
                    operation,
                )


@pytest.fixture(scope="module", autouse=True)
def every_status_seen_here_is_documented() -> Iterator[None]:
    """Every refusal of the matrix is one the spec lists for the operation, as problem+json."""
    with observing() as seen:
        yield
    assert_documented(seen)
