"""Listing: sorted, paginated by name (stable under changes), recursive, NDJSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from drivers import fsops
from tests.files.conftest import ALICE, VFolderHandle


async def walk_pages(
    vf: VFolderHandle, *, path: str = "", recursive: bool = False, limit: int
) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"path": path, "recursive": recursive, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = (await vf.client.get(vf.url("list"), params=params, headers=ALICE)).json()
        seen += [e["path"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


def make_tree(vf: VFolderHandle) -> list[str]:
    """A tree with files and directories at several depths; returns DFS pre-order."""
    expected: list[str] = []
    for top in ("a", "b", "c"):
        (vf.root / top).mkdir()
        expected.append(top)
        for sub in ("x", "y"):
            (vf.root / top / sub).mkdir()
            expected.append(f"{top}/{sub}")
            for leaf in ("1", "2", "3"):
                (vf.root / top / sub / leaf).write_bytes(b"")
                expected.append(f"{top}/{sub}/{leaf}")
        (vf.root / top / "z.txt").write_bytes(b"")
        expected.append(f"{top}/z.txt")
    (vf.root / "empty").mkdir()
    expected.append("empty")
    return expected


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 7, 100])
async def test_recursive_pages_equal_one_walk(vfolder: VFolderHandle, limit: int) -> None:
    expected = make_tree(vfolder)
    assert await walk_pages(vfolder, recursive=True, limit=limit) == expected


async def test_listing_a_subdirectory(vfolder: VFolderHandle) -> None:
    make_tree(vfolder)
    assert await walk_pages(vfolder, path="b/y", limit=2) == ["b/y/1", "b/y/2", "b/y/3"]
    deep = await walk_pages(vfolder, path="b", recursive=True, limit=3)
    assert deep[:2] == ["b/x", "b/x/1"] and deep[-1] == "b/z.txt"


async def test_pages_are_stable_under_concurrent_changes(vfolder: VFolderHandle) -> None:
    for i in range(0, 40, 2):
        (vfolder.root / f"f{i:02d}").write_bytes(b"")
    seen: list[str] = []
    cursor = None
    step = 0
    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = (await vfolder.client.get(vfolder.url("list"), params=params, headers=ALICE)).json()
        seen += [e["name"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # Between pages: remove something already listed, add before and after the cursor.
        step += 1
        (vfolder.root / seen[0]).unlink(missing_ok=True)
        (vfolder.root / f"a-new-{step}").write_bytes(b"")
        (vfolder.root / f"f{step * 2 + 1:02d}-late").write_bytes(b"")
    originals = [f"f{i:02d}" for i in range(0, 40, 2)]
    # Every entry that existed throughout appears exactly once, in order.
    assert [n for n in seen if n in originals] == originals
    assert len(seen) == len(set(seen))


async def test_directories_larger_than_one_sort_batch(
    vfolder: VFolderHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsops, "SORT_BATCH", 7)
    names = [f"n{i:03d}" for i in range(50)]
    for name in reversed(names):
        (vfolder.root / name).write_bytes(b"")
    assert await walk_pages(vfolder, limit=9) == names
    assert await walk_pages(vfolder, limit=1000) == names


async def test_ndjson_streams_everything_with_a_final_line(vfolder: VFolderHandle) -> None:
    expected = make_tree(vfolder)
    response = await vfolder.client.get(
        vfolder.url("list"),
        params={"recursive": True},
        headers={**ALICE, "Accept": "application/x-ndjson"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [e["path"] for e in lines[:-1]] == expected
    assert lines[-1] == {"complete": True, "count": len(expected), "error": None}


async def test_ndjson_of_a_file_or_missing_path_is_a_problem(vfolder: VFolderHandle) -> None:
    (vfolder.root / "f").write_bytes(b"")
    for path, status in (("f", 409), ("missing", 404)):
        response = await vfolder.client.get(
            vfolder.url("list"),
            params={"path": path},
            headers={**ALICE, "Accept": "application/x-ndjson"},
        )
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"


async def test_cursor_of_another_listing_is_refused(vfolder: VFolderHandle) -> None:
    make_tree(vfolder)
    page = (
        await vfolder.client.get(vfolder.url("list"), params={"limit": 1}, headers=ALICE)
    ).json()
    other = await vfolder.client.get(
        vfolder.url("list"),
        params={"limit": 1, "cursor": page["next_cursor"], "path": "a"},
        headers=ALICE,
    )
    assert other.status_code == 400
    assert other.json()["type"] == "/problems/invalid-cursor"


async def test_entry_fields(vfolder: VFolderHandle) -> None:
    (vfolder.root / "file").write_bytes(b"12345")
    (vfolder.root / "file").chmod(0o600)
    (vfolder.root / "dir").mkdir()
    (vfolder.root / "link").symlink_to("file")
    items = (await vfolder.client.get(vfolder.url("list"), headers=ALICE)).json()["items"]
    by_name = {e["name"]: e for e in items}
    assert by_name["file"]["type"] == "file" and by_name["file"]["size"] == 5
    assert by_name["file"]["mode"] == 0o600
    assert by_name["dir"]["type"] == "dir"
    assert by_name["link"]["type"] == "symlink" and by_name["link"]["symlink_target"] == "file"
    assert by_name["file"]["mtime"].endswith("Z") or "+00:00" in by_name["file"]["mtime"]
