"""Rows 8-15 of the reference: the Manager's file calls, with the exact bodies the 23.9 Manager
sends, and what it reads back."""

from __future__ import annotations

import stat
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.backendai.clients import fetch, folder_body, list_items, names, put_file
from tests.backendai.conftest import Target
from tests.support.app import SERVICE_KEY

UNICODE_PATH = "batch/deep/ünïcode name.txt"


def assert_manager_error(
    reply: httpx.Response, *, errno: int | None = None, paths: list[str] | None = None
) -> str:
    """A 4xx JSON object with the ``msg`` the Manager shows (and errno and paths when given)."""
    assert 400 <= reply.status_code < 500, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert isinstance(body["msg"], str) and body["msg"]
    if errno is not None:
        assert body["errno"] == errno
        assert body["paths"] == paths
    msg: str = body["msg"]
    return msg


def test_mkdir_then_an_existing_dir_is_file_exists(target: Target) -> None:
    vfid = target.create_folder()
    body = folder_body(target, vfid, relpath="data/sub", parents=True, exist_ok=False)
    reply = target.call("POST", "/folder/file/mkdir", body)
    assert reply.status_code == 204, reply.text

    again = target.call("POST", "/folder/file/mkdir", body)
    msg = assert_manager_error(again, errno=17, paths=["data/sub"])
    assert "exists" in msg.lower()

    tolerated = target.call("POST", "/folder/file/mkdir", {**body, "exist_ok": True})
    assert tolerated.status_code == 204, tolerated.text
    assert names(target, vfid, "data") == {"sub"}


def test_mkdir_one_level_as_upload_r_sends_it(target: Target) -> None:
    vfid = target.create_folder()
    for relpath in ("top", "top/mid"):
        body = folder_body(target, vfid, relpath=relpath, parents=False, exist_ok=False)
        assert target.call("POST", "/folder/file/mkdir", body).status_code == 204
    assert names(target, vfid, "top") == {"mid"}


def test_list_gives_what_the_manager_formats(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "hello.txt", b"hello")
    body = folder_body(target, vfid, relpath="data", parents=True, exist_ok=False)
    assert target.call("POST", "/folder/file/mkdir", body).status_code == 204

    items = {item["name"]: item for item in list_items(target, vfid, ".")}
    assert set(items) == {"hello.txt", "data"}
    hello, data = items["hello.txt"], items["data"]
    assert hello["type"] == "FILE" and data["type"] == "DIRECTORY"
    assert hello["stat"]["size"] == 5
    assert stat.S_ISREG(hello["stat"]["mode"]) and stat.S_ISDIR(data["stat"]["mode"])
    for item in (hello, data):
        assert isinstance(item["stat"]["mode"], int)
        assert isinstance(item["stat"]["size"], int)
        datetime.fromisoformat(item["stat"]["created"])
        datetime.fromisoformat(item["stat"]["modified"])
        stat.filemode(item["stat"]["mode"])  # what the Manager prints
        assert "symlink_target" in item


def test_rename_a_file_and_a_directory(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "hello.txt", b"hello")
    mkdir = folder_body(target, vfid, relpath="data/sub", parents=True, exist_ok=False)
    assert target.call("POST", "/folder/file/mkdir", mkdir).status_code == 204

    file_body = folder_body(target, vfid, relpath="hello.txt", new_name="hello2.txt")
    reply = target.call("POST", "/folder/file/rename", file_body)
    assert reply.status_code == 204, reply.text
    dir_body = folder_body(target, vfid, relpath="data/sub", new_name="sub2")
    reply = target.call("POST", "/folder/file/rename", dir_body)
    assert reply.status_code == 204, reply.text

    assert names(target, vfid, ".") == {"hello2.txt", "data"}
    assert names(target, vfid, "data") == {"sub2"}
    assert fetch(target, vfid, "hello2.txt").content == b"hello"


def test_move_into_a_directory(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "hello2.txt", b"moved")
    mkdir = folder_body(target, vfid, relpath="data", parents=True, exist_ok=False)
    assert target.call("POST", "/folder/file/mkdir", mkdir).status_code == 204

    body = folder_body(target, vfid, src_relpath="hello2.txt", dst_relpath="data/hello3.txt")
    reply = target.call("POST", "/folder/file/move", body)
    assert reply.status_code == 204, reply.text
    assert names(target, vfid, "data") == {"hello3.txt"}
    assert fetch(target, vfid, "data/hello3.txt").content == b"moved"


def test_delete_files_and_directories(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "data/hello3.txt", b"bye")
    mkdir = folder_body(target, vfid, relpath="data/sub2/inner", parents=True, exist_ok=False)
    assert target.call("POST", "/folder/file/mkdir", mkdir).status_code == 204

    body = folder_body(target, vfid, relpaths=["data/hello3.txt"], recursive=False)
    reply = target.call("POST", "/folder/file/delete", body)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"status": "ok"}

    directory = folder_body(target, vfid, relpaths=["data/sub2"], recursive=False)
    refused = target.call("POST", "/folder/file/delete", directory)
    msg = assert_manager_error(refused, errno=21, paths=["data/sub2"])
    assert "is a directory" in msg.lower()
    assert names(target, vfid, "data") == {"sub2"}

    recursive = target.call("POST", "/folder/file/delete", {**directory, "recursive": True})
    assert recursive.status_code == 200, recursive.text
    assert names(target, vfid, "data") == set()


def test_errors_carry_the_errno_and_the_path(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "a.txt", b"a")
    put_file(target, vfid, "b.txt", b"b")
    missing = folder_body(target, vfid, relpaths=["b.txt", "nope"], recursive=False)
    reply = target.call("POST", "/folder/file/delete", missing)
    assert_manager_error(reply, errno=2, paths=["nope"])
    under_a_file = folder_body(target, vfid, relpath="a.txt/x", parents=True, exist_ok=False)
    reply = target.call("POST", "/folder/file/mkdir", under_a_file)
    assert_manager_error(reply, errno=20, paths=["a.txt/x"])


@pytest.mark.ours_better("the reference mints a download token for a file that does not exist")
def test_a_download_token_needs_a_file(target: Target) -> None:
    vfid = target.create_folder()
    body = folder_body(target, vfid, relpath="nope.txt", archive=False, unmanaged_path=None)
    reply = target.call("POST", "/folder/file/download", body)
    assert_manager_error(reply, errno=2, paths=["nope.txt"])


def test_fetch_streams_the_raw_bytes(target: Target) -> None:
    vfid = target.create_folder()
    data = bytes(range(256)) * 4096  # 1 MiB, more than one read
    put_file(target, vfid, "task/63/17/run.log", data)
    reply = fetch(target, vfid, "task/63/17/run.log")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/octet-stream")
    assert reply.content == data


def test_upload_and_download_calls_answer_a_token(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "big.bin", b"x" * 10)
    upload = target.call(
        "POST", "/folder/file/upload", folder_body(target, vfid, relpath="big.bin", size=10)
    )
    assert upload.status_code == 200, upload.text
    assert isinstance(upload.json()["token"], str)
    body = folder_body(target, vfid, relpath="big.bin", archive=False, unmanaged_path=None)
    download = target.call("POST", "/folder/file/download", body)
    assert download.status_code == 200, download.text
    assert isinstance(download.json()["token"], str)


def test_a_non_ascii_path_with_spaces_works_end_to_end(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, UNICODE_PATH, "ünïcode content".encode())
    assert names(target, vfid, "batch/deep") == {"ünïcode name.txt"}
    assert fetch(target, vfid, UNICODE_PATH).content == "ünïcode content".encode()
    renamed = folder_body(target, vfid, relpath=UNICODE_PATH, new_name="ändere name.txt")
    assert target.call("POST", "/folder/file/rename", renamed).status_code == 204
    assert names(target, vfid, "batch/deep") == {"ändere name.txt"}


@pytest.mark.ours_better("archive and unmanaged_path downloads are refused with a msg up front")
@pytest.mark.parametrize(
    "extra", [{"archive": True, "unmanaged_path": None}, {"archive": False, "unmanaged_path": "/x"}]
)
def test_unsupported_downloads_say_so(target: Target, extra: dict[str, object]) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "big.bin", b"x")
    reply = target.call(
        "POST", "/folder/file/download", folder_body(target, vfid, relpath="big.bin", **extra)
    )
    assert "not supported" in assert_manager_error(reply)


@pytest.mark.ours_better("the reference lists at most 1,000 entries (scandir-limit)")
def test_a_listing_of_1500_entries_returns_them_all(target: Target) -> None:
    """Made through the mount, as a session's container makes files: the listing reads the
    directory, not our records."""
    vfid = target.create_folder()
    mounted = target.call("GET", "/folder/mount", {"volume": target.volume, "vfid": vfid})
    many = Path(mounted.json()["path"]) / "many"
    many.mkdir()
    for i in range(1500):
        (many / f"f{i:04d}.txt").touch()
    items = list_items(target, vfid, "many")
    assert len(items) == 1500
    assert {item["name"] for item in items} == {f"f{i:04d}.txt" for i in range(1500)}


ATTACKS = [
    ("/folder/file/mkdir", {"relpath": "../ESCAPE", "parents": True, "exist_ok": False}),
    ("/folder/file/mkdir", {"relpath": "a/../../ESCAPE", "parents": True, "exist_ok": False}),
    ("/folder/file/rename", {"relpath": "inside.txt", "new_name": "../ESCAPE"}),
    ("/folder/file/rename", {"relpath": "inside.txt", "new_name": "../../ESCAPE"}),
    ("/folder/file/move", {"src_relpath": "inside.txt", "dst_relpath": "../ESCAPE"}),
    ("/folder/file/move", {"src_relpath": "inside.txt", "dst_relpath": "/tmp/ESCAPE"}),
    ("/folder/file/upload", {"relpath": "../ESCAPE", "size": 3}),
    ("/folder/file/fetch", {"relpath": "../../../../etc/passwd"}),
    ("/folder/file/list", {"relpath": "../.."}),
]


@pytest.mark.ours_better(
    "the reference answers a bare 500 to most, mints an upload token for ../, and answers 200 "
    "to a fetch of ../../../../etc/passwd"
)
@pytest.mark.parametrize(
    ("path", "fields"), ATTACKS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(ATTACKS)]
)
def test_path_traversal_is_refused(target: Target, path: str, fields: dict[str, object]) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "inside.txt", b"in")
    marker = f"ESCAPE-{uuid.uuid4().hex}"
    body = {
        key: value.replace("ESCAPE", marker) if isinstance(value, str) else value
        for key, value in fields.items()
    }
    reply = target.call("POST", path, folder_body(target, vfid, **body))
    assert 400 <= reply.status_code < 500, reply.text
    assert names(target, vfid, ".") == {"inside.txt"}
    assert fetch(target, vfid, "inside.txt").content == b"in"
    if target.server is not None:
        assert not list(target.server.cwd.rglob(f"*{marker}*"))


def test_calls_on_an_unknown_folder_are_refused(target: Target) -> None:
    body = folder_body(target, target.new_vfid(), relpath="x", parents=True, exist_ok=False)
    reply = target.call("POST", "/folder/file/mkdir", body)
    assert 400 <= reply.status_code < 600


@pytest.mark.ours_better("an unknown folder is a 404 with a msg, not a bare 500")
def test_an_unknown_folder_is_a_msg(target: Target) -> None:
    body = folder_body(target, target.new_vfid(), relpath=".")
    reply = target.call("POST", "/folder/file/list", body)
    assert reply.status_code == 404
    assert "not found" in reply.json()["msg"]


def test_the_service_key_is_not_the_manager_secret(target: Target) -> None:
    vfid = target.create_folder()
    reply = target.http.post(
        target.manager_url + "/folder/file/list",
        headers={"X-BackendAI-Storage-Auth-Token": SERVICE_KEY},
        json=folder_body(target, vfid, relpath="."),
    )
    assert reply.status_code == 403
