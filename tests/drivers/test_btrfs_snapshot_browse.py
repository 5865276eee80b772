"""Browsing a snapshot on a real, loop-mounted btrfs, as a client that pages, and as one that
sends what it should not: every entry reached through ``next_cursor`` (never a silent cut),
cursors bound to the snapshot listing they came from, and a bad or unknown snapshot name a
4xx problem, not a 503."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.app import bearer, client_with_volumes, user_token
from tests.support.loop_mounts import btrfs_scratch

ALICE = bearer(user_token("alice"))
BOB = bearer(user_token("bob"))
NAMES = [f"f{i:02}" for i in range(23)]


@dataclass
class Snapshotted:
    client: httpx.AsyncClient
    base: str
    root: Path


@pytest.fixture
async def snapshotted(tmp_path: Path) -> AsyncIterator[Snapshotted]:
    """A vfolder of alice's on btrfs, shared read-only with bob, with 23 files, two names
    that are not UTF-8 (made through the mount) and a directory, snapshotted as ``s1`` and
    ``s2``."""
    volume = btrfs_scratch() / "volume"
    volumes = f'[volumes.local]\ndriver = "btrfs"\npath = "{volume}"\n'
    async with client_with_volumes(tmp_path, volumes) as (client, settings):
        made = await client.post(
            "/v1/vfolders", json={"name": "paged", "volume": "local"}, headers=ALICE
        )
        vfolder_id = made.json()["id"]
        hex_id = vfolder_id.replace("-", "")
        root = settings.volumes()["local"].path / hex_id[:2] / hex_id[2:4] / hex_id
        for name in NAMES:
            (root / name).write_bytes(name.encode())
        (root / os.fsdecode(b"z\xff")).write_bytes(b"")
        (root / os.fsdecode(b"\xff\xfe")).write_bytes(b"")
        (root / "dir").mkdir()
        (root / "dir" / "inner").write_bytes(b"")
        base = f"/v1/vfolders/{vfolder_id}"
        for snapshot in ("s1", "s2"):
            taken = await client.post(f"{base}/snapshots", json={"name": snapshot}, headers=ALICE)
            assert taken.status_code == 201, taken.text
        shared = await client.put(f"{base}/grants/user/bob", json={"mode": "ro"}, headers=ALICE)
        assert shared.status_code in (200, 201), shared.text
        yield Snapshotted(client, base, root)


async def browse(
    s: Snapshotted, snapshot: str = "s1", headers: dict[str, str] = ALICE, **params: Any
) -> httpx.Response:
    return await s.client.get(f"{s.base}/snapshots/{snapshot}/list", params=params, headers=headers)


async def test_every_entry_of_a_snapshot_is_reached_page_by_page(snapshotted: Snapshotted) -> None:
    names: list[str] = []
    raw: list[str | None] = []
    cursor = None
    for _ in range(20):
        page = await browse(snapshotted, limit=5, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        assert len(page.json()["items"]) <= 5
        names += [e["name"] for e in page.json()["items"]]
        raw += [e.get("raw_path") for e in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    # 26 entries in pages of 5: the fifth page ends on "z\xff", the sixth resumes after it
    assert names == [*sorted([*NAMES, "dir"]), "z\ufffd", "\ufffd\ufffd"]
    assert raw[-2:] == ["z%FF", "%FF%FE"]
    inner = await browse(snapshotted, path="dir", limit=1)
    assert [e["path"] for e in inner.json()["items"]] == ["dir/inner"]
    assert inner.json()["next_cursor"] is None


async def test_a_snapshot_cursor_works_only_where_it_was_issued(snapshotted: Snapshotted) -> None:
    first = await browse(snapshotted, limit=3)
    cursor = first.json()["next_cursor"]
    assert cursor
    files_cursor = (
        await snapshotted.client.get(f"{snapshotted.base}/list", params={"limit": 3}, headers=ALICE)
    ).json()["next_cursor"]
    head, _, tag = cursor.partition(".")
    attempts = {
        "another snapshot": await browse(snapshotted, "s2", limit=3, cursor=cursor),
        "another directory": await browse(snapshotted, path="dir", limit=3, cursor=cursor),
        "another caller": await browse(snapshotted, headers=BOB, limit=3, cursor=cursor),
        "a files-list cursor": await browse(snapshotted, limit=3, cursor=files_cursor),
        "tampered": await browse(snapshotted, limit=3, cursor=f"{head}A.{tag}"),
        "truncated": await browse(snapshotted, limit=3, cursor=cursor[:-4]),
    }
    for what, response in attempts.items():
        assert response.status_code == 400, (what, response.text)
        assert response.headers["content-type"] == "application/problem+json", what
        assert response.json()["type"] == "/problems/invalid-cursor", (what, response.text)
    # and the other way round: a snapshot cursor on the files list
    files = await snapshotted.client.get(
        f"{snapshotted.base}/list", params={"cursor": cursor}, headers=ALICE
    )
    assert files.json()["type"] == "/problems/invalid-cursor", files.text
    resumed = await browse(snapshotted, limit=3, cursor=cursor)
    assert [e["name"] for e in resumed.json()["items"]] == ["f02", "f03", "f04"]


@pytest.mark.parametrize("name", ["-x", "a%20b", "%2E%2E", "x" * 129, "a%FFb"])
async def test_a_bad_snapshot_name_is_a_400(snapshotted: Snapshotted, name: str) -> None:
    c, base = snapshotted.client, snapshotted.base
    for response in (
        await browse(snapshotted, name),
        await c.delete(f"{base}/snapshots/{name}", headers=ALICE),
        await c.post(f"{base}/snapshots/{name}/restore", json={}, headers=ALICE),
        await c.post(f"{base}/snapshots/{name}/restore", json={"path": "f00"}, headers=ALICE),
    ):
        assert response.status_code == 400, (response.request.method, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "/problems/invalid-snapshot-name", response.text


async def test_an_unknown_snapshot_is_a_404(snapshotted: Snapshotted) -> None:
    c, base = snapshotted.client, snapshotted.base
    for response in (
        await browse(snapshotted, "nope"),
        await c.delete(f"{base}/snapshots/nope", headers=ALICE),
        await c.post(f"{base}/snapshots/nope/restore", json={}, headers=ALICE),
        await c.post(f"{base}/snapshots/nope/restore", json={"path": "f00"}, headers=ALICE),
    ):
        assert response.status_code == 404, (response.request.method, response.text)
        assert response.json()["type"] == "/problems/snapshot-not-found", response.text
    assert (snapshotted.root / "f00").read_bytes() == b"f00"  # nothing restored or lost
