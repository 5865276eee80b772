"""Rows 18-20 of the reference (quota scopes) and the per-vfolder ``/volume/quota`` of older
Managers, with the Manager's exact bodies."""

from __future__ import annotations

import uuid

import pytest

from tests.backendai.conftest import Target

GIB = 1024**3


def scope_of(vfid: str) -> str:
    return vfid.rpartition("/")[0]


def scope_body(target: Target, qsid: str) -> dict[str, str]:
    return {"volume": target.volume, "qsid": qsid}


def scope_quota(target: Target, qsid: str) -> dict[str, int | None]:
    reply = target.call("GET", "/quota-scope", scope_body(target, qsid))
    assert reply.status_code == 200, reply.text
    quota: dict[str, int | None] = reply.json()
    return quota


def set_scope_limit(target: Target, qsid: str, limit: float) -> None:
    body = {**scope_body(target, qsid), "options": {"limit_bytes": limit}}
    reply = target.call("PATCH", "/quota-scope", body)
    assert reply.status_code == 204, reply.text


def test_get_quota_scope_has_both_keys(target: Target) -> None:
    qsid = scope_of(target.create_folder())
    quota = scope_quota(target, qsid)
    assert set(quota) == {"used_bytes", "limit_bytes"}
    assert all(value is None or isinstance(value, int) for value in quota.values())


@pytest.mark.parametrize("kind", ["user", "project"])
def test_patch_takes_the_limit_as_a_float_and_delete_lifts_it(target: Target, kind: str) -> None:
    qsid = scope_of(target.create_folder(target.new_vfid(f"{kind}:{uuid.uuid4()}")))
    set_scope_limit(target, qsid, 10737418240.0)
    lifted = target.call("DELETE", "/quota-scope/quota", scope_body(target, qsid))
    assert lifted.status_code == 204, lifted.text


@pytest.mark.ours_better("the reference's vfs backend keeps no limit (null) and no usage")
def test_a_limit_set_is_read_back_and_lifted(target: Target) -> None:
    qsid = scope_of(target.create_folder())
    assert scope_quota(target, qsid) == {"used_bytes": 0, "limit_bytes": None}
    set_scope_limit(target, qsid, 10737418240.0)
    assert scope_quota(target, qsid) == {"used_bytes": 0, "limit_bytes": 10737418240}
    target.call("DELETE", "/quota-scope/quota", scope_body(target, qsid))
    assert scope_quota(target, qsid)["limit_bytes"] is None


@pytest.mark.ours_better("the reference's vfs backend keeps no limit")
def test_a_zero_limit_is_no_limit_as_the_manager_reads_it(target: Target) -> None:
    qsid = scope_of(target.create_folder())
    set_scope_limit(target, qsid, 5 * GIB)
    set_scope_limit(target, qsid, 0.0)
    assert scope_quota(target, qsid)["limit_bytes"] is None


@pytest.mark.ours_better("the reference's vfs backend ignores the initial limit")
def test_the_initial_limit_of_a_create_applies_only_to_a_scope_without_one(
    target: Target,
) -> None:
    qsid = f"user:{uuid.uuid4()}"
    target.create_folder(target.new_vfid(qsid), initial_max_size_for_quota_scope=2.0 * GIB)
    assert scope_quota(target, qsid)["limit_bytes"] == 2 * GIB
    target.create_folder(target.new_vfid(qsid), initial_max_size_for_quota_scope=3.0 * GIB)
    assert scope_quota(target, qsid)["limit_bytes"] == 2 * GIB
    target.call("DELETE", "/quota-scope/quota", scope_body(target, qsid))
    target.create_folder(target.new_vfid(qsid), initial_max_size_for_quota_scope=4 * GIB)
    assert scope_quota(target, qsid)["limit_bytes"] == 4 * GIB


@pytest.mark.ours_better("the reference answers a bare 500 or problem+json without msg")
@pytest.mark.parametrize(
    "body",
    [
        {"qsid": "group:0c6e1d2a-0000-0000-0000-000000005e02"},
        {"qsid": "user:not-a-uuid"},
        {"qsid": "user:0c6e1d2a-0000-0000-0000-000000005e02", "volume": "elsewhere"},
    ],
)
def test_a_bad_scope_or_volume_is_a_msg(target: Target, body: dict[str, str]) -> None:
    reply = target.call("GET", "/quota-scope", {"volume": target.volume, **body})
    assert 400 <= reply.status_code < 500, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["msg"]


@pytest.mark.ours_better("the reference takes -1.0, and refuses the others without msg")
@pytest.mark.parametrize("limit", [-1.0, 1e300, "ten"])
def test_an_unusable_limit_is_refused(target: Target, limit: object) -> None:
    qsid = scope_of(target.create_folder())
    body = {**scope_body(target, qsid), "options": {"limit_bytes": limit}}
    reply = target.call("PATCH", "/quota-scope", body)
    assert 400 <= reply.status_code < 500, reply.text
    assert reply.json()["msg"]
    assert scope_quota(target, qsid)["limit_bytes"] is None


# -- /volume/quota (per vfolder) ------------------------------------------------------------


@pytest.mark.ours_better("the reference 23.09 answers 400 'deprecated'; 22.09's reply is kept")
def test_volume_quota_reads_and_sets_the_folders_own_limit(target: Target) -> None:
    """22.09 answered ``json_response(volume.get_quota(vfid))``: a bare number of bytes."""
    vfid = target.create_folder()
    body = {"volume": target.volume, "vfid": vfid}
    first = target.call("GET", "/volume/quota", body)
    assert first.status_code == 200, first.text
    assert first.json() is None
    reply = target.call("PATCH", "/volume/quota", {**body, "size_bytes": 1048576.0})
    assert reply.status_code == 204, reply.text
    assert target.call("GET", "/volume/quota", body).json() == 1048576
    target.call("PATCH", "/volume/quota", {**body, "size_bytes": 0})
    assert target.call("GET", "/volume/quota", body).json() is None


@pytest.mark.ours_better("the reference 23.09 answers 400 'deprecated'")
def test_volume_quota_of_a_folder_in_another_scope_is_refused(target: Target) -> None:
    vfid = target.create_folder()
    stranger = f"user:{uuid.uuid4()}/{vfid.rpartition('/')[2]}"
    reply = target.call("GET", "/volume/quota", {"volume": target.volume, "vfid": stranger})
    assert reply.status_code == 404, reply.text
    assert reply.json()["msg"]
