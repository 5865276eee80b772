"""The vfolder lifecycle over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from app.config import Settings
from tests.support.app import SERVICE, bearer, user_token
from tests.support.polling import wait_until

ALICE = bearer(user_token("alice", "lab"))
BOB = bearer(user_token("bob"))


def problem(response: httpx.Response, status: int, problem_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == problem_type
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def create(
    client: httpx.AsyncClient, name: str, headers: dict[str, str] = ALICE, **extra: Any
) -> httpx.Response:
    return await client.post(
        "/v1/vfolders", json={"name": name, "volume": "local", **extra}, headers=headers
    )


def vfolder_dir(settings: Settings, vfolder_id: str) -> Path:
    hex_id = uuid.UUID(vfolder_id).hex
    return settings.data_dir / "volumes" / "local" / hex_id[:2] / hex_id[2:4] / hex_id


async def test_create_get_list_delete(client: httpx.AsyncClient, settings: Settings) -> None:
    created = await create(client, "datasets")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["owner_type"] == "user" and body["owner_id"] == "alice"
    assert body["status"] == "ready"
    assert created.headers["location"] == f"/v1/vfolders/{body['id']}"
    assert vfolder_dir(settings, body["id"]).is_dir()

    got = await client.get(f"/v1/vfolders/{body['id']}", headers=ALICE)
    assert got.json() == body

    listed = (await client.get("/v1/vfolders", headers=ALICE)).json()
    assert [v["id"] for v in listed["items"]] == [body["id"]]
    assert listed["next_cursor"] is None

    deleted = await client.delete(f"/v1/vfolders/{body['id']}", headers=ALICE)
    assert deleted.status_code == 204
    assert not vfolder_dir(settings, body["id"]).exists()
    after = (await client.get(f"/v1/vfolders/{body['id']}", headers=ALICE)).json()
    assert after["status"] == "deleted" and after["deleted_at"] is not None
    assert (await client.get("/v1/vfolders", headers=ALICE)).json()["items"] == []
    gone = (await client.get("/v1/vfolders?status=deleted", headers=ALICE)).json()
    assert [v["id"] for v in gone["items"]] == [body["id"]]
    # Deleting twice is not an error: a Manager retrying after a timeout must not fail.
    assert (await client.delete(f"/v1/vfolders/{body['id']}", headers=ALICE)).status_code == 204


async def test_delete_frees_name_at_once_and_purges_in_background(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    first = (await create(client, "scratch")).json()
    path = vfolder_dir(settings, first["id"])
    (path / "big.bin").write_bytes(b"x" * 1024)
    assert (await client.delete(f"/v1/vfolders/{first['id']}", headers=ALICE)).status_code == 204

    again = await create(client, "scratch")
    assert again.status_code == 201
    assert again.json()["id"] != first["id"]

    trash = settings.data_dir / "volumes" / "local" / ".trash"
    await wait_until(lambda: not any(trash.iterdir()))


async def test_idempotent_create_with_caller_id(client: httpx.AsyncClient) -> None:
    vfolder_id = str(uuid.uuid4())
    first = await create(client, "models", headers=SERVICE, id=vfolder_id, owner_id="carol")
    assert first.status_code == 201
    replay = await create(client, "models", headers=SERVICE, id=vfolder_id, owner_id="carol")
    assert replay.status_code == 200
    assert replay.json() == first.json()

    different = await create(client, "other", headers=SERVICE, id=vfolder_id, owner_id="carol")
    problem(different, 409, "/problems/vfolder-id-conflict")


async def test_concurrent_identical_creates_make_one_vfolder(client: httpx.AsyncClient) -> None:
    vfolder_id = str(uuid.uuid4())
    statuses: list[int] = []

    async def one() -> None:
        response = await create(client, "race", headers=SERVICE, id=vfolder_id, owner_id="dan")
        statuses.append(response.status_code)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one)
    assert sorted(statuses) == [200, 200, 200, 200, 201]


async def test_concurrent_creates_of_one_name_conflict(client: httpx.AsyncClient) -> None:
    statuses: list[int] = []

    async def one() -> None:
        statuses.append((await create(client, "same-name")).status_code)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one)
    assert sorted(statuses) == [201, 409, 409, 409, 409]


async def test_duplicate_name_is_409_but_other_owner_may_use_it(
    client: httpx.AsyncClient,
) -> None:
    assert (await create(client, "shared-name")).status_code == 201
    body = problem(await create(client, "shared-name"), 409, "/problems/vfolder-name-conflict")
    assert body["name"] == "shared-name" and body["owner_id"] == "alice"
    assert (await create(client, "shared-name", headers=BOB)).status_code == 201
    group = await create(client, "shared-name", owner_type="group", owner_id="lab")
    assert group.status_code == 201


@pytest.mark.parametrize(
    "name",
    ["", "a/b", "nul\x00byte", "x" * 256, "é" * 128, ".", "..", " padded", "tab\tname", "a\\b"],
)
async def test_bad_names_are_422(client: httpx.AsyncClient, name: str) -> None:
    problem(await create(client, name), 422, "/problems/validation")


async def test_longest_name_in_bytes_is_accepted(client: httpx.AsyncClient) -> None:
    assert (await create(client, "é" * 127 + "x")).status_code == 201


async def test_unknown_volume_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/vfolders", json={"name": "n", "volume": "nowhere"}, headers=ALICE
    )
    problem(response, 404, "/problems/volume-not-found")


@pytest.mark.parametrize("bad_id", ["abc", "123", "not-a-uuid-at-all-00000000000000000"])
async def test_malformed_uuids_are_422(client: httpx.AsyncClient, bad_id: str) -> None:
    problem(await client.get(f"/v1/vfolders/{bad_id}", headers=ALICE), 422, "/problems/validation")
    problem(
        await create(client, "n", headers=SERVICE, id=bad_id, owner_id="x"),
        422,
        "/problems/validation",
    )


async def test_unknown_fields_are_refused(client: httpx.AsyncClient) -> None:
    problem(await create(client, "n", colour="red"), 422, "/problems/validation")


async def test_service_key_must_name_an_owner(client: httpx.AsyncClient) -> None:
    problem(await create(client, "n", headers=SERVICE), 400, "/problems/invalid-request")


async def test_user_cannot_create_for_someone_else(client: httpx.AsyncClient) -> None:
    problem(await create(client, "n", owner_id="bob"), 403, "/problems/forbidden")
    problem(
        await create(client, "n", owner_type="group", owner_id="other-lab"),
        403,
        "/problems/forbidden",
    )


async def test_another_users_vfolder_is_404_not_403(client: httpx.AsyncClient) -> None:
    vfolder_id = (await create(client, "private")).json()["id"]
    for method in ("GET", "PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"name": "mine"}} if method == "PATCH" else {}
        response = await client.request(method, f"/v1/vfolders/{vfolder_id}", headers=BOB, **kwargs)
        problem(response, 404, "/problems/vfolder-not-found")
    problem(
        await client.get(f"/v1/vfolders/{vfolder_id}/mount", headers=BOB),
        404,
        "/problems/vfolder-not-found",
    )
    missing = await client.get(f"/v1/vfolders/{uuid.uuid4()}", headers=BOB)
    assert missing.json()["title"] == problem(missing, 404, "/problems/vfolder-not-found")["title"]
    assert (await client.get("/v1/vfolders", headers=BOB)).json()["items"] == []


async def test_group_members_see_group_vfolders(client: httpx.AsyncClient) -> None:
    vfolder = (await create(client, "lab-data", owner_type="group", owner_id="lab")).json()
    erin = bearer(user_token("erin", "lab"))
    assert (await client.get(f"/v1/vfolders/{vfolder['id']}", headers=erin)).status_code == 200
    listed = (await client.get("/v1/vfolders", headers=erin)).json()["items"]
    assert [v["id"] for v in listed] == [vfolder["id"]]
    assert (await client.get(f"/v1/vfolders/{vfolder['id']}", headers=BOB)).status_code == 404


async def test_admins_and_service_keys_see_everything(client: httpx.AsyncClient) -> None:
    from app.auth.principal import Role

    vfolder_id = (await create(client, "alices")).json()["id"]
    admin = bearer(user_token("root", role=Role.ADMIN))
    for headers in (admin, SERVICE):
        assert (await client.get(f"/v1/vfolders/{vfolder_id}", headers=headers)).status_code == 200
        items = (await client.get("/v1/vfolders", headers=headers)).json()["items"]
        assert [v["id"] for v in items] == [vfolder_id]


async def test_rename(client: httpx.AsyncClient) -> None:
    first = (await create(client, "old")).json()
    await create(client, "taken")
    renamed = await client.patch(f"/v1/vfolders/{first['id']}", json={"name": "new"}, headers=ALICE)
    assert renamed.status_code == 200 and renamed.json()["name"] == "new"
    assert (await client.get(f"/v1/vfolders/{first['id']}", headers=ALICE)).json()["name"] == "new"
    clash = await client.patch(f"/v1/vfolders/{first['id']}", json={"name": "taken"}, headers=ALICE)
    problem(clash, 409, "/problems/vfolder-name-conflict")
    problem(
        await client.patch(f"/v1/vfolders/{first['id']}", json={"name": "a/b"}, headers=ALICE),
        422,
        "/problems/validation",
    )
    await client.delete(f"/v1/vfolders/{first['id']}", headers=ALICE)
    problem(
        await client.patch(f"/v1/vfolders/{first['id']}", json={"name": "z"}, headers=ALICE),
        410,
        "/problems/vfolder-deleted",
    )


async def test_mount_info(client: httpx.AsyncClient, settings: Settings) -> None:
    vfolder_id = (await create(client, "mounted")).json()["id"]
    mount = await client.get(f"/v1/vfolders/{vfolder_id}/mount", headers=SERVICE)
    assert mount.status_code == 200
    body = mount.json()
    assert body["backend"] == "posix" and body["volume"] == "local"
    assert Path(body["host_path"]) == vfolder_dir(settings, vfolder_id).resolve()
    await client.delete(f"/v1/vfolders/{vfolder_id}", headers=SERVICE)
    problem(
        await client.get(f"/v1/vfolders/{vfolder_id}/mount", headers=SERVICE),
        410,
        "/problems/vfolder-deleted",
    )


async def test_pagination_walks_every_vfolder_once(client: httpx.AsyncClient) -> None:
    names = [f"vf-{i:03d}" for i in range(25)]
    for name in reversed(names):
        assert (await create(client, name)).status_code == 201
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/vfolders", params=params, headers=ALICE)).json()
        seen += [v["name"] for v in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # A vfolder created behind the cursor does not shift what comes next.
        await create(client, f"aaa-{pages}")
    assert seen == names
    assert pages == 4


async def test_list_filters(client: httpx.AsyncClient) -> None:
    await create(client, "one")
    await create(client, "two", owner_type="group", owner_id="lab")
    by_owner = await client.get(
        "/v1/vfolders", params={"owner_type": "group", "owner_id": "lab"}, headers=ALICE
    )
    assert [v["name"] for v in by_owner.json()["items"]] == ["two"]
    by_name = await client.get("/v1/vfolders", params={"name": "one"}, headers=ALICE)
    assert [v["name"] for v in by_name.json()["items"]] == ["one"]
    other_volume = await client.get("/v1/vfolders", params={"volume": "elsewhere"}, headers=ALICE)
    assert other_volume.json()["items"] == []


@pytest.mark.parametrize(
    "params",
    [{"cursor": "garbage"}, {"cursor": "eyJ4IjoxfQ"}, {"limit": 0}, {"limit": 1001}],
)
async def test_bad_list_parameters(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await client.get("/v1/vfolders", params=params, headers=ALICE)
    assert response.status_code in {400, 422}
    assert response.headers["content-type"] == "application/problem+json"


async def test_volumes(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/v1/volumes", headers=ALICE)).json()["items"]
    assert [v["name"] for v in listed] == ["local"]
    local = (await client.get("/v1/volumes/local", headers=ALICE)).json()
    assert local["backend"] == "posix"
    assert local["capabilities"] == []
    assert local["capacity"]["total_bytes"] >= local["capacity"]["free_bytes"] > 0
    problem(
        await client.get("/v1/volumes/nowhere", headers=ALICE), 404, "/problems/volume-not-found"
    )
