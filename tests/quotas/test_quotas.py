"""Quotas through the API: limits per scope, refusals that name the scope, growth-only
overwrites, reservations of uploads in progress, alerts, and who may set what."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from app.config import Settings
from app.db.engine import create_engine, create_session_factory
from app.quotas.repository import QuotaRepository
from tests.files.conftest import ALICE, VFolderHandle
from tests.support.app import SERVICE, bearer, user_token
from tests.support.tasks import finished_task

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}
BOB = bearer(user_token("bob"))


async def set_quota(
    client: httpx.AsyncClient,
    scope: str,
    scope_id: str,
    *,
    headers: dict[str, str] = SERVICE,
    volume: str | None = "local",
    **limits: int | None,
) -> httpx.Response:
    params = {"volume": volume} if volume and scope != "vfolder" else {}
    return await client.put(
        f"/v1/quotas/{scope}/{scope_id}", json=limits, params=params, headers=headers
    )


async def view(vf: VFolderHandle, scope: str = "vfolder", scope_id: str | None = None) -> Any:
    params = {} if scope == "vfolder" else {"volume": "local"}
    got = await vf.client.get(
        f"/v1/quotas/{scope}/{scope_id or vf.id}", params=params, headers=SERVICE
    )
    assert got.status_code == 200, got.text
    return got.json()


async def put(vf: VFolderHandle, path: str, size: int, **headers: str) -> httpx.Response:
    return await vf.client.put(
        vf.url(f"files/{path}"), content=b"x" * size, headers={**ALICE, **headers}
    )


def refused(response: httpx.Response, scope_type: str) -> dict[str, Any]:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == "/problems/quota-exceeded"
    assert body["scope_type"] == scope_type
    return body


async def test_a_write_beyond_a_vfolder_quota_is_refused_naming_the_scope(
    vfolder: VFolderHandle,
) -> None:
    assert (await set_quota(vfolder.client, "vfolder", vfolder.id, limit_bytes=1000)).is_success
    assert (await put(vfolder, "a.bin", 600)).status_code == 201
    body = refused(await put(vfolder, "b.bin", 600), "vfolder")
    assert (body["limit_bytes"], body["used_bytes"], body["requested_bytes"]) == (1000, 600, 600)
    assert body["scope_id"] == vfolder.id
    assert not (vfolder.root / "b.bin").exists()
    state = await view(vfolder)
    assert (state["used_bytes"], state["reserved_bytes"], state["free_bytes"]) == (600, 0, 400)
    assert state["usage_percent"] == 60.0


async def test_an_overwrite_counts_only_its_growth_and_deleting_frees_at_once(
    vfolder: VFolderHandle,
) -> None:
    await set_quota(vfolder.client, "vfolder", vfolder.id, limit_bytes=1000)
    assert (await put(vfolder, "a.bin", 600)).status_code == 201
    assert (await put(vfolder, "a.bin", 1000)).status_code == 200  # +400: exactly the limit
    refused(await put(vfolder, "a.bin", 1001), "vfolder")
    deleted = await vfolder.client.post(
        vfolder.url("delete"), json={"paths": ["a.bin"]}, headers=ALICE
    )
    assert deleted.status_code == 200, deleted.text
    assert (await view(vfolder))["used_bytes"] == 0
    assert (await put(vfolder, "b.bin", 1000)).status_code == 201


async def test_chunked_writes_of_unknown_length_are_held_to_the_quota(
    vfolder: VFolderHandle,
) -> None:
    await set_quota(vfolder.client, "vfolder", vfolder.id, limit_bytes=3 * 1024 * 1024)

    async def body(size: int) -> Any:
        for _ in range(size // 65536):
            yield b"y" * 65536

    fits = await vfolder.client.put(
        vfolder.url("files/fits.bin"), content=body(2 * 1024 * 1024), headers=ALICE
    )
    assert fits.status_code == 201, fits.text
    too_big = await vfolder.client.put(
        vfolder.url("files/big.bin"), content=body(4 * 1024 * 1024), headers=ALICE
    )
    refused(too_big, "vfolder")
    assert not (vfolder.root / "big.bin").exists()
    state = await view(vfolder)
    assert (state["used_bytes"], state["reserved_bytes"]) == (2 * 1024 * 1024, 0)


async def test_a_user_quota_spans_every_vfolder_the_user_owns_on_the_volume(
    vfolder: VFolderHandle,
) -> None:
    other = await vfolder.client.post(
        "/v1/vfolders", json={"name": "second", "volume": "local"}, headers=ALICE
    )
    assert other.status_code == 201
    assert (await set_quota(vfolder.client, "user", "alice", limit_bytes=1000)).is_success
    assert (await put(vfolder, "a.bin", 600)).status_code == 201
    second = await vfolder.client.put(
        f"/v1/vfolders/{other.json()['id']}/files/b.bin", content=b"z" * 600, headers=ALICE
    )
    body = refused(second, "user")
    assert (body["scope_id"], body["volume"], body["used_bytes"]) == ("alice", "local", 600)
    state = await view(vfolder, "user", "alice")
    assert (state["used_bytes"], state["limit_bytes"]) == (600, 1000)


async def test_a_group_quota_spans_the_groups_vfolders(vfolder: VFolderHandle) -> None:
    lab = bearer(user_token("carol", "lab"))
    made = await vfolder.client.post(
        "/v1/vfolders",
        json={"name": "shared", "volume": "local", "owner_type": "group", "owner_id": "lab"},
        headers=SERVICE,
    )
    assert made.status_code == 201, made.text
    assert (await set_quota(vfolder.client, "group", "lab", limit_bytes=500)).is_success
    url = f"/v1/vfolders/{made.json()['id']}/files/x.bin"
    assert (await vfolder.client.put(url, content=b"1" * 400, headers=lab)).status_code == 201
    refused(await vfolder.client.put(url + "2", content=b"1" * 200, headers=lab), "group")
    seen = await vfolder.client.get("/v1/quotas/group/lab", params={"volume": "local"}, headers=lab)
    assert seen.status_code == 200 and seen.json()["used_bytes"] == 400


async def test_a_file_count_limit_counts_new_entries(vfolder: VFolderHandle) -> None:
    await set_quota(vfolder.client, "vfolder", vfolder.id, limit_files=2)
    assert (await put(vfolder, "a", 1)).status_code == 201
    assert (await put(vfolder, "a", 5)).status_code == 200  # replacing adds no entry
    assert (await put(vfolder, "b", 1)).status_code == 201
    body = refused(await put(vfolder, "c", 1), "vfolder")
    assert body["limit_files"] == 2
    made = await vfolder.client.post(vfolder.url("mkdir"), json={"path": "d"}, headers=ALICE)
    refused(made, "vfolder")


def _meta(path: str) -> str:
    return f"path {base64.b64encode(path.encode()).decode()}"


async def _tus_create(vf: VFolderHandle, length: int | None, **headers: str) -> httpx.Response:
    sizing = {"Upload-Length": str(length)} if length is not None else {"Upload-Defer-Length": "1"}
    return await vf.client.post(
        vf.url("uploads"),
        headers={**ALICE, **TUS, **sizing, "Upload-Metadata": _meta("t.bin"), **headers},
    )


async def test_a_tus_upload_reserves_its_length_at_creation(vfolder: VFolderHandle) -> None:
    await set_quota(vfolder.client, "vfolder", vfolder.id, limit_bytes=1000)
    refused(await _tus_create(vfolder, 1001), "vfolder")
    created = await _tus_create(vfolder, 800)
    assert created.status_code == 201
    assert (await view(vfolder))["reserved_bytes"] == 800
    refused(await put(vfolder, "p.bin", 300), "vfolder")  # 800 are spoken for
    ended = await vfolder.client.delete(created.headers["location"], headers={**ALICE, **TUS})
    assert ended.status_code == 204
    assert (await view(vfolder))["reserved_bytes"] == 0
    assert (await put(vfolder, "p.bin", 300)).status_code == 201


async def test_a_finished_tus_upload_turns_its_reservation_into_usage(
    vfolder: VFolderHandle,
) -> None:
    await set_quota(vfolder.client, "vfolder", vfolder.id, limit_bytes=1000)
    created = await _tus_create(vfolder, 10)
    patched = await vfolder.client.patch(
        created.headers["location"],
        content=b"0123456789",
        headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "0"},
    )
    assert patched.status_code == 204
    state = await view(vfolder)
    assert (state["used_bytes"], state["reserved_bytes"]) == (10, 0)


async def test_a_deferred_length_upload_cannot_exceed_the_quota(vfolder: VFolderHandle) -> None:
    await set_quota(vfolder.client, "vfolder", vfolder.id, limit_bytes=1024 * 1024)
    created = await _tus_create(vfolder, None)
    assert created.status_code == 201
    url = created.headers["location"]
    chunk = b"d" * (600 * 1024)
    first = await vfolder.client.patch(
        url, content=chunk, headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "0"}
    )
    assert first.status_code == 204, first.text
    second = await vfolder.client.patch(
        url, content=chunk, headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": str(len(chunk))}
    )
    refused(second, "vfolder")
    head = await vfolder.client.head(url, headers={**ALICE, **TUS})
    assert head.headers["upload-offset"] == str(len(chunk))
    assert (await view(vfolder))["reserved_bytes"] <= 1024 * 1024


async def test_a_declared_length_gives_back_what_was_reserved_ahead_of_it(
    vfolder: VFolderHandle,
) -> None:
    """A deferred-length upload reserves in steps (16 MiB) ahead of its bytes. When it then
    declares a length of 2 KiB, it holds 2 KiB: the rest of the step is room for others."""
    mib = 1024 * 1024
    await set_quota(vfolder.client, "vfolder", vfolder.id, limit_bytes=24 * mib)
    created = await _tus_create(vfolder, None)
    assert created.status_code == 201
    url = created.headers["location"]
    tus = {**ALICE, **TUS, **OCTETS}
    first = await vfolder.client.patch(
        url, content=b"a" * 1024, headers={**tus, "Upload-Offset": "0"}
    )
    assert first.status_code == 204, first.text
    assert (await view(vfolder))["reserved_bytes"] >= 16 * mib  # the step ahead

    declared = await vfolder.client.patch(
        url, content=b"", headers={**tus, "Upload-Offset": "1024", "Upload-Length": "2048"}
    )

    assert declared.status_code == 204, declared.text
    assert (await view(vfolder))["reserved_bytes"] == 2048
    assert (await put(vfolder, "other.bin", 20 * mib)).status_code == 201
    last = await vfolder.client.patch(
        url, content=b"b" * 1024, headers={**tus, "Upload-Offset": "1024"}
    )
    assert last.status_code == 204, last.text
    state = await view(vfolder)
    assert (state["used_bytes"], state["reserved_bytes"]) == (20 * mib + 2048, 0)
    assert await vfolder.usage() == (20 * mib + 2048, 2)


async def test_concatenated_parts_cannot_exceed_the_quota(vfolder: VFolderHandle) -> None:
    await set_quota(vfolder.client, "vfolder", vfolder.id, limit_bytes=1000)
    partial = {"Upload-Concat": "partial"}
    first = await _tus_create(vfolder, 600, **partial)
    assert first.status_code == 201
    refused(await _tus_create(vfolder, 600, **partial), "vfolder")
    patched = await vfolder.client.patch(
        first.headers["location"],
        content=b"p" * 600,
        headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "0"},
    )
    assert patched.status_code == 204
    final = await vfolder.client.post(
        vfolder.url("uploads"),
        headers={
            **ALICE,
            **TUS,
            "Upload-Concat": f"final;{first.headers['location']}",
            "Upload-Metadata": _meta("joined.bin"),
        },
    )
    assert final.status_code == 201, final.text
    state = await view(vfolder)
    assert (state["used_bytes"], state["reserved_bytes"]) == (600, 0)


async def test_who_may_set_which_quota(vfolder: VFolderHandle) -> None:
    mine = await set_quota(vfolder.client, "vfolder", vfolder.id, headers=ALICE, limit_bytes=5)
    assert mine.status_code == 200, mine.text
    assert (await set_quota(vfolder.client, "vfolder", vfolder.id, headers=BOB)).status_code in {
        403,
        404,
    }
    own_user = await set_quota(vfolder.client, "user", "alice", headers=ALICE, limit_bytes=9)
    assert own_user.status_code == 403
    assert (await set_quota(vfolder.client, "user", "alice", limit_bytes=100)).is_success
    above = await set_quota(vfolder.client, "vfolder", vfolder.id, headers=ALICE, limit_bytes=101)
    assert refused(above, "user")["limit_bytes"] == 100
    other_user = await vfolder.client.get(
        "/v1/quotas/user/bob", params={"volume": "local"}, headers=ALICE
    )
    assert other_user.status_code == 403
    no_volume = await vfolder.client.get("/v1/quotas/user/alice", headers=ALICE)
    assert no_volume.status_code == 400
    unset = await vfolder.client.delete(f"/v1/quotas/vfolder/{vfolder.id}", headers=ALICE)
    assert unset.status_code == 204
    assert (await view(vfolder))["limit_bytes"] is None
    shown = await vfolder.client.get(vfolder.base, headers=ALICE)
    assert shown.json()["quota_bytes"] is None


async def test_crossing_80_and_95_percent_is_told_and_measured(vfolder: VFolderHandle) -> None:
    await set_quota(vfolder.client, "vfolder", vfolder.id, limit_bytes=1000)
    await put(vfolder, "a.bin", 850)
    assert (await view(vfolder))["alert_level_percent"] == 80
    await put(vfolder, "b.bin", 100)
    assert (await view(vfolder))["alert_level_percent"] == 95
    metrics = (await vfolder.client.get("/metrics")).text
    gauge = (
        f'storage_quota_usage_ratio{{scope_id="{vfolder.id}",scope_type="vfolder",'
        'volume="local"} 0.95'
    )
    assert gauge in metrics
    over = await vfolder.client.get("/v1/quotas", params={"over": 90}, headers=SERVICE)
    assert [q["scope_id"] for q in over.json()["items"]] == [vfolder.id]
    assert (await vfolder.client.get("/v1/quotas", headers=ALICE)).status_code == 403


@pytest.mark.parametrize("how", ["mount-write", "corrupted-ledger"])
async def test_reconciliation_corrects_the_ledger_and_reports_the_drift(
    vfolder: VFolderHandle, how: str
) -> None:
    await put(vfolder, "a.bin", 100)
    if how == "mount-write":
        (vfolder.root / "direct.bin").write_bytes(b"m" * 500)  # a container writing
        expected = (600, 2)
    else:
        await vfolder.client.put(vfolder.url("files/a.bin"), content=b"", headers=ALICE)
        (vfolder.root / "a.bin").write_bytes(b"q" * 100)  # ledger says 0, disk says 100
        expected = (100, 1)
    report = await vfolder.client.post(vfolder.url("reconcile"), headers=ALICE)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["vfolders_scanned"] == 1
    [correction] = body["corrections"]
    assert (correction["bytes_after"], correction["files_after"]) == expected
    assert body["drift_bytes"] == abs(correction["bytes_after"] - correction["bytes_before"])
    assert await vfolder.usage() == expected
    again = await vfolder.client.post(vfolder.url("reconcile"), headers=ALICE)
    assert again.json()["corrections"] == []
    metrics = (await vfolder.client.get("/metrics")).text
    assert 'storage_quota_drift_bytes_total{volume="local"}' in metrics


async def test_volume_reconciliation_reports_orphans_without_deleting_them(
    vfolder: VFolderHandle,
) -> None:
    orphan_hex = "ab" * 16
    orphan = vfolder.root.parent.parent.parent / orphan_hex[:2] / orphan_hex[2:4] / orphan_hex
    orphan.mkdir(parents=True)
    lost = await vfolder.client.post(
        "/v1/vfolders", json={"name": "lost", "volume": "local"}, headers=ALICE
    )
    lost_hex = lost.json()["id"].replace("-", "")
    (vfolder.root.parent.parent.parent / lost_hex[:2] / lost_hex[2:4] / lost_hex).rmdir()
    refused_user = await vfolder.client.post("/v1/volumes/local/reconcile", headers=ALICE)
    assert refused_user.status_code == 403
    submitted = await vfolder.client.post("/v1/volumes/local/reconcile", headers=SERVICE)
    assert submitted.status_code == 202, submitted.text
    task = await finished_task(vfolder.client, submitted.headers["location"], SERVICE)
    assert task["state"] == "succeeded", task
    assert task["progress"]["current"] == task["progress"]["total"] >= 2
    body = task["result"]
    assert body["orphan_directories"] == [
        f"{orphan_hex[:8]}-{orphan_hex[8:12]}-"
        f"{orphan_hex[12:16]}-{orphan_hex[16:20]}-"
        f"{orphan_hex[20:]}"
    ]
    assert body["missing_directories"] == [lost.json()["id"]]
    assert orphan.is_dir()


async def test_the_listing_of_every_limit_agrees_with_each_scope_in_a_few_statements(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    vfolders = []
    for n, owner in enumerate([("user", "alice")] * 3 + [("group", "lab")] * 2):
        made = await client.post(
            "/v1/vfolders",
            json={"name": f"v{n}", "volume": "local", "owner_type": owner[0], "owner_id": owner[1]},
            headers=SERVICE,
        )
        assert made.status_code == 201, made.text
        vfolders.append(made.json()["id"])
        as_owner = {**SERVICE, "X-Act-As-User": "alice", "X-Act-As-Groups": "lab"}
        for size in range(n + 1):
            written = await client.put(
                f"/v1/vfolders/{made.json()['id']}/files/f{size}",
                content=b"x" * (100 * (size + 1)),
                headers=as_owner,
            )
            assert written.status_code == 201, written.text
    reserving = await client.post(
        f"/v1/vfolders/{vfolders[1]}/uploads",
        headers={
            **TUS,
            **SERVICE,
            "X-Act-As-User": "alice",
            "Upload-Length": "777",
            "Upload-Metadata": "path " + base64.b64encode(b"big.bin").decode(),
        },
    )
    assert reserving.status_code == 201, reserving.text
    for scope, scope_id in [("user", "alice"), ("group", "lab"), ("user", "nobody")] + [
        ("vfolder", v) for v in vfolders
    ]:
        assert (await set_quota(client, scope, scope_id, limit_bytes=10_000)).is_success
    deleted = await client.delete(f"/v1/vfolders/{vfolders[0]}", headers=SERVICE)
    assert deleted.status_code == 204  # limited, then gone

    listed = await client.get("/v1/quotas", params={"over": 0}, headers=SERVICE)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert len(items) == 3 + len(vfolders) - 1  # a deleted vfolder's limit is gone with it
    for item in items:
        params = {} if item["scope_type"] == "vfolder" else {"volume": "local"}
        one = await client.get(
            f"/v1/quotas/{item['scope_type']}/{item['scope_id']}", params=params, headers=SERVICE
        )
        assert item == one.json()
    by_scope = {(i["scope_type"], i["scope_id"]): i for i in items}
    alice = by_scope[("user", "alice")]
    assert (alice["used_bytes"], alice["reserved_bytes"]) == (300 + 600, 777)

    engine = create_engine(settings.effective_database_url)
    statements = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        async with create_session_factory(engine)() as session:
            assert len(await QuotaRepository(session).every_limit_with_usage()) == len(items)
    finally:
        await engine.dispose()
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 5
