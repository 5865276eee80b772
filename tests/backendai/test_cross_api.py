"""One vfolder, two APIs: what the Manager makes is ours through ``/v1`` (owner, files, usage
ledger, quotas), and what ``/v1`` makes is reachable by the Manager under its vfid."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.backendai.conftest import Target

pytestmark = pytest.mark.ours_only("looks through our /v1 API")


def folder_id(vfid: str) -> uuid.UUID:
    return uuid.UUID(vfid.rpartition("/")[2])


def scope_uuid(vfid: str) -> str:
    return vfid.partition(":")[2].partition("/")[0]


def put_file(target: Target, vfid: str, path: str, data: bytes) -> httpx.Response:
    return target.v1(
        "PUT",
        f"/v1/vfolders/{folder_id(vfid)}/files/{path}",
        content=data,
        params={"parents": "true"},
    )


def usage(target: Target, vfid: str) -> dict[str, int]:
    reply = target.call("GET", "/folder/usage", {"volume": target.volume, "vfid": vfid})
    assert reply.status_code == 200, reply.text
    result: dict[str, int] = reply.json()
    return result


@pytest.mark.parametrize(("kind", "owner_type"), [("user", "user"), ("project", "group")])
def test_a_folder_the_manager_creates_is_ours_owned_by_its_scope(
    target: Target, kind: str, owner_type: str
) -> None:
    vfid = target.create_folder(target.new_vfid(f"{kind}:{uuid.uuid4()}"))
    reply = target.v1("GET", f"/v1/vfolders/{folder_id(vfid)}")
    assert reply.status_code == 200, reply.text
    vfolder = reply.json()
    assert vfolder["owner_type"] == owner_type
    assert vfolder["owner_id"] == scope_uuid(vfid)
    assert vfolder["volume"] == target.volume
    assert vfolder["status"] == "ready"
    assert vfolder["name"] == f"bai-{folder_id(vfid).hex}"


def test_files_written_through_v1_show_in_the_managers_usage(target: Target) -> None:
    vfid = target.create_folder()
    assert put_file(target, vfid, "data/a.bin", b"a" * 1000).status_code == 201
    assert put_file(target, vfid, "b.bin", b"b" * 234).status_code == 201
    assert usage(target, vfid) == {"used_bytes": 1234, "file_count": 3}
    used = target.call("GET", "/folder/used-bytes", {"volume": target.volume, "vfid": vfid})
    assert used.json() == {"used_bytes": 1234}
    scope = target.call(
        "GET", "/quota-scope", {"volume": target.volume, "qsid": vfid.rpartition("/")[0]}
    )
    assert scope.json()["used_bytes"] == 1234


@pytest.mark.ours_better("the reference's vfs backend enforces no quota")
def test_a_scope_limit_set_by_the_manager_holds_on_v1_uploads(target: Target) -> None:
    vfid = target.create_folder()
    qsid = vfid.rpartition("/")[0]
    body = {"volume": target.volume, "qsid": qsid, "options": {"limit_bytes": 4096.0}}
    assert target.call("PATCH", "/quota-scope", body).status_code == 204
    assert put_file(target, vfid, "fits.bin", b"x" * 4000).status_code == 201
    refused = put_file(target, vfid, "over.bin", b"x" * 1000)
    assert refused.status_code == 413, refused.text
    # Another folder of the same scope shares the limit.
    sibling = target.create_folder(target.new_vfid(qsid))
    assert put_file(target, sibling, "over.bin", b"x" * 1000).status_code == 413
    quota = target.v1("GET", f"/v1/quotas/user/{scope_uuid(vfid)}", params={"volume": "local"})
    assert quota.status_code == 200, quota.text
    assert quota.json()["limit_bytes"] == 4096
    assert quota.json()["used_bytes"] == 4000
    lifted = target.call("DELETE", "/quota-scope/quota", {"volume": target.volume, "qsid": qsid})
    assert lifted.status_code == 204
    assert put_file(target, vfid, "over.bin", b"x" * 1000).status_code == 201


def test_a_limit_set_through_v1_is_what_the_manager_reads(target: Target) -> None:
    vfid = target.create_folder(target.new_vfid(f"project:{uuid.uuid4()}"))
    reply = target.v1(
        "PUT",
        f"/v1/quotas/group/{scope_uuid(vfid)}",
        params={"volume": "local"},
        json={"limit_bytes": 123456},
    )
    assert reply.status_code == 200, reply.text
    scope = target.call(
        "GET", "/quota-scope", {"volume": target.volume, "qsid": vfid.rpartition("/")[0]}
    )
    assert scope.json() == {"used_bytes": 0, "limit_bytes": 123456}


@pytest.mark.ours_better("the reference 23.09 answers 400 'deprecated' to /volume/quota")
def test_the_volume_quota_is_the_folders_own_quota_scope(target: Target) -> None:
    vfid = target.create_folder()
    body = {"volume": target.volume, "vfid": vfid, "size_bytes": 2048.0}
    assert target.call("PATCH", "/volume/quota", body).status_code == 204
    quota = target.v1("GET", f"/v1/quotas/vfolder/{folder_id(vfid)}")
    assert quota.json()["limit_bytes"] == 2048
    assert target.v1("GET", f"/v1/vfolders/{folder_id(vfid)}").json()["quota_bytes"] == 2048
    assert put_file(target, vfid, "big.bin", b"x" * 4096).status_code == 413


def test_a_folder_made_through_v1_is_reachable_by_its_vfid(target: Target) -> None:
    owner = uuid.uuid4()
    made = target.v1(
        "POST",
        "/v1/vfolders",
        json={"name": "v1-made", "volume": "local", "owner_type": "user", "owner_id": str(owner)},
    )
    assert made.status_code == 201, made.text
    folder = uuid.UUID(made.json()["id"])
    assert put_file(target, f"user:{owner}/{folder.hex}", "f.txt", b"hello").status_code == 201
    vfid = f"user:{owner}/{folder.hex}"
    assert usage(target, vfid) == {"used_bytes": 5, "file_count": 1}
    mount = target.call("GET", "/folder/mount", {"volume": "local", "vfid": vfid, "subpath": "."})
    assert mount.status_code == 200, mount.text
    for wrong in (f"user:{uuid.uuid4()}/{folder.hex}", f"project:{owner}/{folder.hex}"):
        refused = target.call("GET", "/folder/usage", {"volume": "local", "vfid": wrong})
        assert refused.status_code == 404, refused.text
        assert refused.json()["msg"]


def test_a_manager_delete_is_a_deleted_vfolder_through_v1(target: Target) -> None:
    vfid = target.create_folder()
    reply = target.call("POST", "/folder/delete", {"volume": target.volume, "vfid": vfid})
    assert reply.status_code == 204
    vfolder = target.v1("GET", f"/v1/vfolders/{folder_id(vfid)}").json()
    assert vfolder["status"] == "deleted"
    gone = target.call("GET", "/folder/usage", {"volume": target.volume, "vfid": vfid})
    assert 400 <= gone.status_code < 500


def test_a_manager_clone_is_a_vfolder_cloned_from_its_source(target: Target) -> None:
    source = target.create_folder()
    assert put_file(target, source, "x.txt", b"12345").status_code == 201
    destination = target.new_vfid(source.rpartition("/")[0])
    body = {
        "src_volume": target.volume,
        "src_vfid": source,
        "dst_volume": target.volume,
        "dst_vfid": destination,
    }
    assert target.call("POST", "/folder/clone", body).status_code == 204
    clone = target.v1("GET", f"/v1/vfolders/{folder_id(destination)}").json()
    assert clone["status"] == "ready"
    assert clone["cloned_from"] == str(folder_id(source))
    assert clone["owner_id"] == scope_uuid(source)
    content = target.v1("GET", f"/v1/vfolders/{folder_id(destination)}/files/x.txt")
    assert content.content == b"12345"


@pytest.mark.ours_better("the reference's vfs backend enforces no quota")
def test_a_clone_over_the_scope_limit_fails_with_a_msg(target: Target) -> None:
    source = target.create_folder()
    assert put_file(target, source, "x.bin", b"x" * 3000).status_code == 201
    other_scope = f"user:{uuid.uuid4()}"
    target.create_folder(target.new_vfid(other_scope), initial_max_size_for_quota_scope=1000.0)
    body = {
        "src_volume": target.volume,
        "src_vfid": source,
        "dst_volume": target.volume,
        "dst_vfid": target.new_vfid(other_scope),
    }
    reply = target.call("POST", "/folder/clone", body)
    assert 400 <= reply.status_code < 500, reply.text
    assert reply.json()["msg"]
