"""Choosing a vfolder's id is the Manager's privilege: a user who sends one learns nothing
about which ids are taken, and a replayed create answers the mode the caller really has."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from app.auth.principal import Role
from tests.support.app import SERVICE, bearer, user_token

ALICE = bearer(user_token("alice", "lab"))
ADMIN = bearer(user_token("root", role=Role.ADMIN))
AS_BOB_IN_LAB = {**SERVICE, "X-Act-As-User": "bob", "X-Act-As-Groups": "lab"}


async def create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post("/v1/vfolders", json={"volume": "local", **body}, headers=headers)


def assert_id_refused(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == "/problems/vfolder-id-not-allowed", body
    return body


@pytest.mark.parametrize("caller", [ALICE, ADMIN], ids=["user", "admin-user"])
async def test_a_user_cannot_choose_or_probe_vfolder_ids(
    client: httpx.AsyncClient, caller: dict[str, str]
) -> None:
    taken = uuid.uuid4()
    made = await create(client, SERVICE, id=str(taken), name="carols", owner_id="carol")
    assert made.status_code == 201
    source = (await create(client, caller, name="source", owner_id="alice")).json()["id"]

    answers = []
    for chosen in (uuid.uuid4(), taken):
        for body in (
            {"name": "carols", "owner_id": "carol"},  # the taken id's very create
            {"name": "mine", "owner_id": "alice"},
            {"name": "lab-data", "owner_type": "group", "owner_id": "lab"},
        ):
            answers.append(assert_id_refused(await create(client, caller, id=str(chosen), **body)))
        cloned = await client.post(
            f"/v1/vfolders/{source}/clone",
            json={"name": "copy", "volume": "local", "owner_id": "alice", "id": str(chosen)},
            headers=caller,
        )
        answers.append(assert_id_refused(cloned))
    # A taken id and a free one answer alike: nothing to tell them apart.
    assert len({(a["status"], a["type"], a["detail"]) for a in answers}) == 1

    listed = (await client.get("/v1/vfolders", headers=SERVICE)).json()["items"]
    assert sorted(v["name"] for v in listed) == ["carols", "source"]


async def test_replayed_create_answers_the_callers_real_mode(client: httpx.AsyncClient) -> None:
    chosen = str(uuid.uuid4())
    body = {"id": chosen, "name": "lab-data", "owner_type": "group", "owner_id": "lab"}
    first = await create(client, AS_BOB_IN_LAB, **body)
    assert first.status_code == 201, first.text
    assert first.json()["mode"] == "rw"  # a member's mode is the group mode, not the owner's
    narrowed = await client.patch(
        f"/v1/vfolders/{chosen}", json={"group_mode": "ro"}, headers=SERVICE
    )
    assert narrowed.status_code == 200

    replay = await create(client, AS_BOB_IN_LAB, **body)
    assert replay.status_code == 200, replay.text
    assert replay.json()["mode"] == "ro"
    got = await client.get(f"/v1/vfolders/{chosen}", headers=AS_BOB_IN_LAB)
    assert got.json()["mode"] == replay.json()["mode"]
    assert (await create(client, SERVICE, **body)).json()["mode"] == "rwd"  # the Manager


async def test_a_members_own_group_create_answers_the_group_mode(
    client: httpx.AsyncClient,
) -> None:
    made = await create(client, ALICE, name="lab-data", owner_type="group", owner_id="lab")
    assert made.status_code == 201, made.text
    got = await client.get(f"/v1/vfolders/{made.json()['id']}", headers=ALICE)
    assert made.json()["mode"] == got.json()["mode"] == "rw"


async def test_a_clone_answers_the_callers_real_mode(client: httpx.AsyncClient) -> None:
    """A member who clones into the group gets the group's mode on the clone, not `rwd`:
    the answer must not promise what every later request refuses."""
    source = await create(client, AS_BOB_IN_LAB, name="src", owner_type="group", owner_id="lab")
    assert source.status_code == 201, source.text
    cloned = await client.post(
        f"/v1/vfolders/{source.json()['id']}/clone",
        json={"name": "copy", "volume": "local", "owner_type": "group", "owner_id": "lab"},
        headers=AS_BOB_IN_LAB,
    )
    assert cloned.status_code == 202, cloned.text
    clone_id = cloned.json()["vfolder"]["id"]
    got = await client.get(f"/v1/vfolders/{clone_id}", headers=AS_BOB_IN_LAB)
    assert got.status_code == 200, got.text
    assert cloned.json()["vfolder"]["mode"] == got.json()["mode"] == "rw"

    own = await client.post(
        f"/v1/vfolders/{source.json()['id']}/clone",
        json={"name": "mine", "volume": "local"},
        headers=AS_BOB_IN_LAB,
    )
    assert own.status_code == 202, own.text
    assert own.json()["vfolder"]["mode"] == "rwd"  # bob owns this one
