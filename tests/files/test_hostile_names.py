"""A container writes through the mount, so a vfolder can hold names that are not UTF-8 (any
bytes but ``/`` and NUL). The API never creates one, but it must show every one it finds,
exactly, and never answer 500 or break a stream because of one."""

from __future__ import annotations

import itertools
import json
import os
import unicodedata
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.files.raw_paths import percent_decoded
from app.files.schemas import file_info_json
from app.files.service import resume_point
from app.pagination import CursorSealer, Listing
from drivers.errors import UnsafePath
from drivers.fsops import PosixFileOpsSync
from drivers.layout import VolumeLayout
from drivers.paths import ROOT, parse_relative_path
from tests.files.conftest import ALICE, VFolderHandle
from tests.support.app import JWT_SECRET, SERVICE
from tests.support.sqlite_template import migrated_sqlite
from tests.support.tasks import finished_task


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Names on disk, not metadata:
    one database is enough (the metadata tests run on both)."""
    return migrated_sqlite(tmp_path / "meta.sqlite3")


BAD = b"caf\xe9.txt"  # Latin-1 "café.txt": not UTF-8
SHOWN = "caf\ufffd.txt"
RAW = "caf%E9.txt"
VFOLDER = uuid.uuid4()


def plant(directory: Path, name: bytes, content: bytes = b"x") -> None:
    """What a process in a container does: a name the proxy would refuse, made anyway."""
    fd = os.open(os.fsencode(directory) + b"/" + name, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, content)
    finally:
        os.close(fd)


def plant_dir(directory: Path, name: bytes) -> Path:
    made = directory / os.fsdecode(name)  # Python holds the bytes losslessly
    made.mkdir()
    return made


def on_disk(directory: Path) -> list[bytes]:
    return sorted(os.fsencode(entry.name) for entry in directory.iterdir())


async def list_all(vfolder: VFolderHandle, **params: Any) -> list[dict[str, Any]]:
    """Every entry, page by page, following ``next_cursor``."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = await vfolder.client.get(vfolder.url("list"), params=query, headers=ALICE)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the listing never ended")


async def test_a_name_that_is_not_utf8_is_listed_exactly(vfolder: VFolderHandle) -> None:
    plant(vfolder.root, BAD, b"12345")
    (vfolder.root / "plain.txt").write_bytes(b"")
    listed = await vfolder.client.get(vfolder.url("list"), headers=ALICE)
    assert listed.status_code == 200, listed.text
    by_name = {e["name"]: e for e in listed.json()["items"]}
    assert set(by_name) == {SHOWN, "plain.txt"}
    entry = by_name[SHOWN]
    assert (entry["path"], entry["raw_path"], entry["size"]) == (SHOWN, RAW, 5)
    assert by_name["plain.txt"]["raw_path"] is None  # only set where it differs


async def test_the_ndjson_stream_survives_such_names(vfolder: VFolderHandle) -> None:
    deep = plant_dir(vfolder.root, b"d\xff")
    plant(deep, BAD)
    response = await vfolder.client.get(
        vfolder.url("list"),
        params={"recursive": "true"},
        headers={**ALICE, "accept": "application/x-ndjson"},
    )
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[-1] == {"complete": True, "count": 2, "error": None}
    assert [(e["path"], e["raw_path"]) for e in lines[:-1]] == [
        ("d\ufffd", "d%FF"),
        (f"d\ufffd/{SHOWN}", f"d%FF/{RAW}"),
    ]


async def test_a_page_boundary_on_such_a_name_resumes(vfolder: VFolderHandle) -> None:
    """The cursor carries the name it stopped at: one that is not UTF-8 must still resume,
    in a directory and inside a subtree."""
    deep = plant_dir(vfolder.root, b"sub\xfe")
    names = [b"a", b"b\xff", b"c", b"d\xe9\xe9", b"e"]
    for name in names:
        plant(vfolder.root, name)
        plant(deep, name)
    flat = await list_all(vfolder, limit=1)
    assert [e["name"] for e in flat] == ["a", "b\ufffd", "c", "d\ufffd\ufffd", "e", "sub\ufffd"]
    walked = await list_all(vfolder, recursive="true", limit=1)
    assert len(walked) == 2 * len(names) + 1
    assert len({e["raw_path"] or e["path"] for e in walked}) == len(walked)
    assert [e["path"] for e in walked][-5:] == [
        "sub\ufffd/a",
        "sub\ufffd/b\ufffd",
        "sub\ufffd/c",
        "sub\ufffd/d\ufffd\ufffd",
        "sub\ufffd/e",
    ]
    inside: list[str] = []  # the same, listing the directory by its raw_path
    cursor = ""
    while True:
        page = await vfolder.client.get(
            vfolder.url(f"list?path=sub%FE&limit=2{cursor}"), headers=ALICE
        )
        assert page.status_code == 200, page.text
        inside += [e["raw_path"] for e in page.json()["items"]]
        if page.json()["next_cursor"] is None:
            break
        cursor = f"&cursor={page.json()['next_cursor']}"
    assert inside == ["sub%FE/a", "sub%FE/b%FF", "sub%FE/c", "sub%FE/d%E9%E9", "sub%FE/e"]


async def test_usage_and_reconcile_count_such_names(vfolder: VFolderHandle) -> None:
    """A walk of the vfolder (the usage ledger's reconcile) counts them like any name."""
    plant(plant_dir(vfolder.root, b"\x80"), BAD, b"abc")
    fixed = await vfolder.client.post(vfolder.url("reconcile"), headers=SERVICE)
    assert fixed.status_code == 200, fixed.text
    assert await vfolder.usage() == (3, 2)


async def test_a_symlink_whose_target_is_not_utf8_is_listed(vfolder: VFolderHandle) -> None:
    (vfolder.root / "link").symlink_to(os.fsdecode(b"../caf\xe9"))
    listed = await vfolder.client.get(vfolder.url("stat"), params={"path": "link"}, headers=ALICE)
    assert listed.status_code == 200, listed.text
    assert listed.json()["symlink_target"] == "../caf\ufffd"


@pytest.mark.parametrize("raw", [RAW, "caf%e9.txt"])
async def test_such_a_file_is_downloaded_through_its_raw_path(
    vfolder: VFolderHandle, raw: str
) -> None:
    plant(vfolder.root, BAD, b"content")
    got = await vfolder.client.get(vfolder.url(f"files/{raw}"), headers=ALICE)
    assert got.status_code == 200, got.text
    assert got.content == b"content"
    assert "filename*=UTF-8''caf%EF%BF%BD.txt" in got.headers["content-disposition"]
    stat = await vfolder.client.get(vfolder.url(f"stat?path={raw}"), headers=ALICE)
    assert (stat.status_code, stat.json()["raw_path"]) == (200, RAW)


async def test_such_a_file_is_moved_to_a_good_name_then_deleted(vfolder: VFolderHandle) -> None:
    plant(vfolder.root, BAD, b"content")
    plant(vfolder.root, b"junk\xff")
    moved = await vfolder.client.post(
        vfolder.url("move"),
        json={"source": RAW, "destination": "cafe.txt", "percent_encoded": True},
        headers=ALICE,
    )
    assert moved.status_code == 200, moved.text
    assert (vfolder.root / "cafe.txt").read_bytes() == b"content"
    deleted = await vfolder.client.post(
        vfolder.url("delete"), json={"paths": ["junk%FF"], "percent_encoded": True}, headers=ALICE
    )
    assert deleted.json()["results"][0]["status"] == "deleted", deleted.text
    assert on_disk(vfolder.root) == [b"cafe.txt"]


async def test_the_api_still_creates_only_utf8_names(vfolder: VFolderHandle) -> None:
    """Reading, moving away and deleting such a name is allowed; making one is not."""
    plant(vfolder.root, b"src")
    c = vfolder.client
    refused = [
        await c.put(vfolder.url("files/new%FF"), content=b"x", headers=ALICE),
        await c.post(
            vfolder.url("move"),
            json={"source": "src", "destination": "new%FF", "percent_encoded": True},
            headers=ALICE,
        ),
    ]
    for response in refused:
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert on_disk(vfolder.root) == [b"src"]


async def test_a_cursor_cannot_spell_a_name_twice(vfolder: VFolderHandle) -> None:
    """Escaped bytes that decode as UTF-8 would be a second spelling of a good name (and a
    way around the single-name check): refused even in a sealed cursor."""
    sealer = CursorSealer.from_secrets([JWT_SECRET])
    listing: Listing = {
        "endpoint": "files-list",
        "vfolder": vfolder.id,
        "path": "",
        "recursive": True,
        "sort": "name",
        "principal": "user:alice",
    }
    for after in (["\udcc3\udca9"], ["\udc2e\udc2e"], ["\udcff", "\ud800"]):
        sealed = sealer.seal({"after": after}, listing=listing)
        response = await vfolder.client.get(
            vfolder.url("list"), params={"recursive": "true", "cursor": sealed}, headers=ALICE
        )
        assert response.status_code == 400, response.text
        assert response.json()["type"] == "/problems/invalid-cursor"


async def test_a_clone_copies_such_names_exactly(vfolder: VFolderHandle) -> None:
    """The task's report names what it skipped (a FIFO here): one such name must not fail
    the clone after the copy."""
    plant(plant_dir(vfolder.root, b"d\xff"), BAD, b"data")
    os.mkfifo(vfolder.root / os.fsdecode(b"pipe\xfe"))
    started = await vfolder.client.post(
        vfolder.url("clone"), json={"name": "twin", "volume": "local"}, headers=ALICE
    )
    assert started.status_code == 202, started.text
    task = await finished_task(vfolder.client, started.headers["location"], ALICE)
    assert task["state"] == "succeeded", task
    assert task["result"]["skipped"] == ["pipe\ufffd"]
    twin = started.json()["vfolder"]["id"].replace("-", "")
    twin_root = vfolder.root.parents[2] / twin[:2] / twin[2:4] / twin
    assert (twin_root / os.fsdecode(b"d\xff") / os.fsdecode(BAD)).read_bytes() == b"data"


_any_name = st.binary(min_size=1, max_size=60).filter(
    lambda name: b"/" not in name and b"\0" not in name and name not in (b".", b"..")
)


@settings(max_examples=150, deadline=None)
@given(names=st.lists(_any_name, min_size=1, max_size=6, unique=True))
def test_any_bytes_name_is_shown_and_addressed_exactly(
    tmp_path_factory: Any, names: list[bytes]
) -> None:
    """Property, on the file operations and the listing's JSON: whatever bytes a container
    names a file with, its entry serialises, ``raw_path`` gives back the exact bytes, paging
    one entry at a time resumes over every name, and ``raw_path`` addresses the file (unless
    the name holds a control character or a backslash, refused in any path)."""
    layout = VolumeLayout(tmp_path_factory.mktemp("volume"))
    layout.vfolder_path(VFOLDER).mkdir(parents=True)
    root = layout.vfolder_path(VFOLDER)
    for index, name in enumerate(names):
        plant(root, name, str(index).encode())
    files = PosixFileOpsSync(layout)
    seen: list[bytes] = []
    after: tuple[str, ...] | None = None
    while True:
        page = list(
            itertools.islice(files.iter_tree(VFOLDER, ROOT, after=after, recursive=False), 1)
        )
        if not page:
            break
        shown = json.loads(file_info_json(page[0]))
        raw = unquote_to_bytes(shown["raw_path"]) if shown["raw_path"] else shown["path"].encode()
        seen.append(raw)
        text = os.fsdecode(raw)
        if "\\" in text or any(unicodedata.category(ch) == "Cc" for ch in text):
            # refused in every path the API takes, as for UTF-8 names (documented)
            with pytest.raises(UnsafePath):
                parse_relative_path(percent_decoded(quote(raw)), existing=True)
        else:
            address = percent_decoded(shown["raw_path"] or quote(shown["path"]))
            handle = files.open_for_read(VFOLDER, parse_relative_path(address, existing=True))
            try:
                assert handle.read(0, 100) == str(names.index(raw)).encode()
            finally:
                handle.close()
        after = resume_point({"after": [page[0].name]})  # as a sealed cursor carries it
    assert sorted(seen) == sorted(names)
