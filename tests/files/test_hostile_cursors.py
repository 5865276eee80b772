"""Pagination cursors are client-held state the server acts on: a forged, tampered, truncated
or replayed cursor answers 400 ``/problems/invalid-cursor`` on every paginated endpoint, and
never makes the server read a directory outside the vfolder."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.errors import InvalidCursor
from app.pagination import CursorSealer, Listing, derive_cursor_key
from tests.files.conftest import ALICE, VFolderHandle
from tests.files.test_hostile import assert_outside_untouched, assert_refused, outside
from tests.support.app import JWT_SECRET, SERVICE, bearer, user_token

__all__ = ["outside"]  # the fixture, shared with test_hostile

BOB = bearer(user_token("bob"))


def plain_cursor(position: dict[str, Any]) -> str:
    """A cursor built the way the server built them before they were sealed: base64url of
    the JSON position, nothing else."""
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def edited(cursor: str, change: Callable[[dict[str, Any]], None]) -> str:
    """The cursor with its position changed and whatever follows it kept as it was."""
    head, dot, tail = cursor.partition(".")
    position = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    change(position)
    return plain_cursor(position) + dot + tail


def assert_invalid_cursor(response: httpx.Response) -> None:
    body = assert_refused(response, 400)
    assert body["type"] == "/problems/invalid-cursor", body


# -- files list ----------------------------------------------------------------------------


async def list_page(
    vfolder: VFolderHandle, headers: dict[str, str], **params: Any
) -> httpx.Response:
    return await vfolder.client.get(vfolder.url("list"), params=params, headers=headers)


def escapes(vfolder: VFolderHandle, outside: Path) -> list[list[str]]:
    """Resume points that name a directory outside the vfolder, if the walk followed them."""
    up = [".."] * len(vfolder.root.relative_to(outside.parent).parts)
    return [[str(outside)], ["/etc"], up, [*up[:-1], "..", "outside"], ["a", *up, ".."]]


async def test_forged_cursor_cannot_list_outside_the_vfolder(
    vfolder: VFolderHandle, outside: Path
) -> None:
    (vfolder.root / "a").mkdir()
    (vfolder.root / "a" / "x").write_bytes(b"")
    for after in escapes(vfolder, outside):
        for path in ("", "a"):
            forged = plain_cursor({"path": path, "recursive": True, "after": after})
            response = await list_page(
                vfolder, ALICE, path=path, recursive="true", cursor=forged, limit=1000
            )
            assert "secret" not in response.text, (after, response.text[:300])
            assert_invalid_cursor(response)
    assert_outside_untouched(outside)


async def test_sealed_cursor_with_an_escaping_position_still_cannot_list_outside(
    vfolder: VFolderHandle, outside: Path
) -> None:
    """Should the key ever leak: what a verified cursor names is checked again, one name at
    a time, before it reaches the driver."""
    sealer = CursorSealer.from_secrets([JWT_SECRET])
    listing: Listing = {
        "endpoint": "files-list",
        "vfolder": vfolder.id,
        "path": "",
        "recursive": True,
        "sort": "name",
        "principal": "user:alice",
    }
    for after in [*escapes(vfolder, outside), ["a/b"], ["\ud800"], [""], []]:
        sealed = sealer.seal({"after": after}, listing=listing)
        response = await list_page(vfolder, ALICE, recursive="true", cursor=sealed)
        assert "secret" not in response.text
        assert_invalid_cursor(response)
    assert_outside_untouched(outside)


@pytest.fixture
async def paged(vfolder: VFolderHandle) -> tuple[VFolderHandle, str]:
    """A vfolder shared read-only with bob, and alice's cursor to the second page of a
    recursive listing of ``d``."""
    for name in ("d/1", "d/2", "d/3", "d/sub/4"):
        (vfolder.root / name).parent.mkdir(parents=True, exist_ok=True)
        (vfolder.root / name).write_bytes(b"")
    shared = await vfolder.client.put(
        vfolder.url("grants/user/bob"), json={"mode": "ro"}, headers=ALICE
    )
    assert shared.status_code in (200, 201), shared.text
    first = await list_page(vfolder, ALICE, path="d", recursive="true", limit=1)
    assert first.status_code == 200
    cursor = first.json()["next_cursor"]
    assert cursor
    second = await list_page(vfolder, ALICE, path="d", recursive="true", limit=1, cursor=cursor)
    assert [e["path"] for e in second.json()["items"]] == ["d/2"]
    return vfolder, cursor


async def test_files_cursor_replayed_elsewhere_is_refused(
    paged: tuple[VFolderHandle, str],
) -> None:
    vfolder, cursor = paged
    other = await vfolder.client.post(
        "/v1/vfolders", json={"name": "other", "volume": "local"}, headers=ALICE
    )
    other_id = other.json()["id"]
    other_root = vfolder.root.parents[2] / other_id.replace("-", "")[:2]
    other_root = other_root / other_id.replace("-", "")[2:4] / other_id.replace("-", "")
    (other_root / "d").mkdir()
    (other_root / "d" / "2").write_bytes(b"")
    attempts = {
        "other vfolder": await vfolder.client.get(
            f"/v1/vfolders/{other_id}/list",
            params={"path": "d", "recursive": "true", "limit": 1, "cursor": cursor},
            headers=ALICE,
        ),
        "other path": await list_page(
            vfolder, ALICE, path="d/sub", recursive="true", limit=1, cursor=cursor
        ),
        "not recursive": await list_page(vfolder, ALICE, path="d", limit=1, cursor=cursor),
        "other user": await list_page(
            vfolder, BOB, path="d", recursive="true", limit=1, cursor=cursor
        ),
        "service key": await list_page(
            vfolder, SERVICE, path="d", recursive="true", limit=1, cursor=cursor
        ),
    }
    for case, response in attempts.items():
        assert response.status_code == 400, (case, response.text)
        assert_invalid_cursor(response)


def _skip_ahead(position: dict[str, Any]) -> None:
    position["after"] = ["3"]


async def test_files_cursor_tampered_truncated_or_garbage_is_refused(
    paged: tuple[VFolderHandle, str],
) -> None:
    vfolder, cursor = paged
    bad = {
        "tampered": edited(cursor, _skip_ahead),
        "truncated": cursor[:-3],
        "payload only": cursor.partition(".")[0],
        "extra field": edited(cursor, lambda p: p.update(path="d")),
        "lone surrogate": plain_cursor({"path": "d", "recursive": True, "after": ["\ud800"]}),
        "not base64": "!!!" + cursor,
        "not ascii": "é" + cursor,
        "empty": "",
        "signed by another secret": CursorSealer.from_secrets(["x" * 40]).seal(
            {"after": ["1"]}, listing={}
        ),
    }
    for case, forged in bad.items():
        response = await list_page(
            vfolder, ALICE, path="d", recursive="true", limit=1, cursor=forged
        )
        assert response.status_code == 400, (case, response.text)
        assert_invalid_cursor(response)


# -- vfolders list -------------------------------------------------------------------------


@pytest.fixture
async def vfolder_page(client: httpx.AsyncClient) -> str:
    """Alice's cursor to the second page of her vfolders (bob has some of his own)."""
    for owner, names in ((ALICE, ("va", "vb", "vc")), (BOB, ("vb-bob", "vz-bob"))):
        for name in names:
            created = await client.post(
                "/v1/vfolders", json={"name": name, "volume": "local"}, headers=owner
            )
            assert created.status_code == 201
    first = await client.get("/v1/vfolders", params={"limit": 1}, headers=ALICE)
    cursor: str = first.json()["next_cursor"]
    second = await client.get("/v1/vfolders", params={"limit": 1, "cursor": cursor}, headers=ALICE)
    assert [v["name"] for v in second.json()["items"]] == ["vb"]
    return cursor


async def test_vfolders_cursor_replayed_elsewhere_is_refused(
    client: httpx.AsyncClient, vfolder_page: str
) -> None:
    cursor = vfolder_page
    attempts = {
        "other user": await client.get(
            "/v1/vfolders", params={"limit": 1, "cursor": cursor}, headers=BOB
        ),
        "service key": await client.get(
            "/v1/vfolders", params={"limit": 1, "cursor": cursor}, headers=SERVICE
        ),
        "other filter": await client.get(
            "/v1/vfolders", params={"limit": 1, "cursor": cursor, "mode": "rw"}, headers=ALICE
        ),
    }
    for case, response in attempts.items():
        assert response.status_code == 400, (case, response.text)
        assert_invalid_cursor(response)


async def test_vfolders_cursor_tampered_truncated_or_garbage_is_refused(
    client: httpx.AsyncClient, vfolder_page: str
) -> None:
    cursor = vfolder_page
    bad = {
        "tampered": edited(cursor, lambda p: p.update(name="b")),
        "truncated": cursor[:-3],
        "payload only": cursor.partition(".")[0],
        "lone surrogate": plain_cursor({"name": "\ud800", "id": str(uuid.uuid4())}),
        "not a uuid": plain_cursor({"name": "va", "id": "../../etc"}),
        "not ascii": "é" + cursor,
    }
    for case, forged in bad.items():
        response = await client.get(
            "/v1/vfolders", params={"limit": 1, "cursor": forged}, headers=ALICE
        )
        assert response.status_code == 400, (case, response.text)
        assert_invalid_cursor(response)


def test_cursors_survive_a_secret_rotation_only_while_the_old_secret_is_listed() -> None:
    """The operator rotates STORAGE_JWT_SECRET and lists the old one as previous: pages in
    flight keep working; once the old secret is dropped, its cursors are refused."""
    old, new = "old-secret-" + "o" * 32, "new-secret-" + "n" * 32
    listing: Listing = {"endpoint": "files-list", "principal": "user:alice"}
    cursor = CursorSealer.from_secrets([old]).seal({"after": ["a"]}, listing=listing)
    rotated = CursorSealer.from_secrets([new, old])
    assert rotated.open(cursor, listing=listing, keys=("after",)) == {"after": ["a"]}
    with pytest.raises(InvalidCursor):
        CursorSealer.from_secrets([new]).open(cursor, listing=listing, keys=("after",))
    # The key is derived: the raw secret does not seal a cursor this server accepts.
    payload = cursor.partition(".")[0]
    message = json.dumps(listing, separators=(",", ":"), sort_keys=True).encode() + b"\n"
    message += base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    sealed_tag = base64.urlsafe_b64decode(cursor.partition(".")[2] + "=")
    assert hmac.new(derive_cursor_key(old), message, hashlib.sha256).digest() == sealed_tag
    raw_tag = hmac.new(old.encode(), message, hashlib.sha256).digest()
    forged = payload + "." + base64.urlsafe_b64encode(raw_tag).decode().rstrip("=")
    with pytest.raises(InvalidCursor):
        rotated.open(forged, listing=listing, keys=("after",))
