"""``GET /v1/vfolders/{id}/usage`` says where its figure comes from and as of when: a file
written straight into the vfolder's directory (as a container does through its mount) is
counted by the next scheduled scan, or at once by ``POST …/reconcile``; writes under way are
not counted twice. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.db.engine import create_engine
from tests.support.app import SERVICE, bearer, client_for, make_settings, user_token
from tests.support.polling import eventually
from tests.support.tasks import finished_task

ALICE = bearer(user_token("alice"))
INTERVAL = 0.5  # the scan schedule of these tests, in seconds
MIB = 1024 * 1024


@pytest.fixture
async def scanning(tmp_path: Path, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app scanning every ``INTERVAL`` seconds."""
    settings = make_settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        usage_scan_interval_seconds=INTERVAL,
    )
    async with client_for(settings) as client:
        yield client


async def new_vfolder(client: httpx.AsyncClient) -> tuple[str, Path]:
    made = await client.post("/v1/vfolders", json={"name": "u", "volume": "local"}, headers=ALICE)
    assert made.status_code == 201, made.text
    base = f"/v1/vfolders/{made.json()['id']}"
    mount = await client.get(f"{base}/mount", headers=ALICE)
    return base, Path(mount.json()["host_path"])


async def usage(client: httpx.AsyncClient, base: str) -> dict[str, Any]:
    answer = await client.get(f"{base}/usage", headers=ALICE)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def write_as_a_container(path: Path, size: int) -> datetime:
    """Plain file I/O into the vfolder's directory, past the API; returns when it was done."""
    with path.open("wb") as out:
        out.write(os.urandom(size))
    return datetime.now(UTC)


async def test_a_new_vfolder_answers_from_the_ledger_until_a_scan_checks_it(
    client: httpx.AsyncClient,
) -> None:
    base, _root = await new_vfolder(client)
    await client.put(f"{base}/files/a.txt", content=b"12345", headers=ALICE)
    body = await usage(client, base)
    assert (body["used_bytes"], body["file_count"]) == (5, 1)
    assert (body["source"], body["scanned_at"]) == ("ledger", None)
    assert datetime.fromisoformat(body["as_of"]) <= datetime.now(UTC)


async def test_a_file_written_through_the_mount_is_counted_within_a_scan_interval(
    scanning: httpx.AsyncClient,
) -> None:
    base, root = await new_vfolder(scanning)
    await scanning.put(f"{base}/files/api.bin", content=b"x" * 100, headers=ALICE)
    written_at = write_as_a_container(root / "container.bin", 3000)

    async def counted() -> bool:
        body = await usage(scanning, base)
        return body["source"] == "scan" and datetime.fromisoformat(body["as_of"]) >= written_at

    await eventually(counted, within_seconds=30 * INTERVAL)
    body = await usage(scanning, base)
    assert (body["used_bytes"], body["file_count"]) == (3100, 2)
    assert body["scanned_at"] == body["as_of"]


async def test_reconcile_counts_a_file_written_through_the_mount_at_once(
    client: httpx.AsyncClient,
) -> None:
    base, root = await new_vfolder(client)
    (root / "sub").mkdir()
    written_at = write_as_a_container(root / "sub" / "c.bin", 2048)
    assert (await usage(client, base))["used_bytes"] == 0

    reconciled = await client.post(f"{base}/reconcile", headers=ALICE)
    assert reconciled.status_code == 200, reconciled.text
    [correction] = reconciled.json()["corrections"]
    assert (correction["bytes_after"], correction["files_after"]) == (2048, 2)
    body = await usage(client, base)
    assert (body["used_bytes"], body["file_count"], body["source"]) == (2048, 2, "scan")
    assert datetime.fromisoformat(body["as_of"]) >= written_at


async def test_a_file_grown_in_place_is_found_by_reconcile(client: httpx.AsyncClient) -> None:
    """An append changes the file, not its directory: the incremental scans can miss it for
    a while, the walk ``reconcile`` asks for cannot."""
    base, root = await new_vfolder(client)
    write_as_a_container(root / "log.txt", 10)
    assert (await client.post(f"{base}/reconcile", headers=ALICE)).status_code == 200
    with (root / "log.txt").open("ab") as log:
        log.write(b"y" * 90)
    assert (await client.post(f"{base}/reconcile", headers=ALICE)).status_code == 200
    assert (await usage(client, base))["used_bytes"] == 100


async def test_a_write_under_way_is_not_counted_twice(client: httpx.AsyncClient) -> None:
    """A tus upload half sent holds its reservation; its bytes wait in the staging area,
    outside the vfolder. A scan meanwhile leaves both where they are."""
    base, _root = await new_vfolder(client)
    vfolder_id = base.rsplit("/", 1)[1]
    tus = {"Tus-Resumable": "1.0.0", **ALICE}
    created = await client.post(
        f"{base}/uploads",
        headers={**tus, "Upload-Length": str(4 * MIB), "Upload-Metadata": "path dC5iaW4="},
    )
    assert created.status_code == 201, created.text
    patched = await client.patch(
        created.headers["location"],
        content=os.urandom(MIB),
        headers={**tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert patched.status_code == 204, patched.text

    reconciled = await client.post(f"{base}/reconcile", headers=ALICE)
    assert reconciled.json()["corrections"] == []
    quota = (await client.get(f"/v1/quotas/vfolder/{vfolder_id}", headers=ALICE)).json()
    assert (quota["used_bytes"], quota["reserved_bytes"]) == (0, 4 * MIB)
    assert (await usage(client, base))["used_bytes"] == 0


async def test_a_vfolder_being_cloned_is_left_to_its_clone(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """Its content arrives under the clone's reservation and is settled once whole: a scan
    meanwhile reports it busy rather than count it too."""
    base, root = await new_vfolder(client)
    vfolder_id = base.rsplit("/", 1)[1]
    write_as_a_container(root / "copied.bin", 4096)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE vfolders SET status = 'cloning' WHERE id = :id"),
                {"id": vfolder_id if "postgresql" in database_url else vfolder_id.replace("-", "")},
            )
    finally:
        await engine.dispose()

    started = await client.post("/v1/volumes/local/reconcile", headers=SERVICE)
    assert started.status_code == 202, started.text
    task = await finished_task(client, started.headers["location"], SERVICE)
    assert task["state"] == "succeeded", task
    assert task["result"]["skipped_busy"] == [vfolder_id]
    assert task["result"]["corrections"] == []


async def test_reconcile_needs_the_right_to_write(client: httpx.AsyncClient) -> None:
    base, _root = await new_vfolder(client)
    vfolder_id = base.rsplit("/", 1)[1]
    bob = bearer(user_token("bob"))
    for mode, expected in (("ro", 403), ("rw", 200)):
        granted = await client.put(f"{base}/grants/user/bob", json={"mode": mode}, headers=SERVICE)
        assert granted.status_code in (200, 201), granted.text
        answer = await client.post(f"/v1/vfolders/{vfolder_id}/reconcile", headers=bob)
        assert answer.status_code == expected, answer.text


async def test_quota_views_say_who_enforces_the_limit(client: httpx.AsyncClient) -> None:
    """On a volume without native quotas, every limit is the proxy's."""
    base, _root = await new_vfolder(client)
    vfolder_id = base.rsplit("/", 1)[1]
    limited = await client.put(
        f"/v1/quotas/vfolder/{vfolder_id}", json={"limit_bytes": MIB}, headers=ALICE
    )
    assert limited.json()["enforced_by"] == "proxy"
    user = await client.get("/v1/quotas/user/alice?volume=local", headers=ALICE)
    assert user.json()["enforced_by"] == "proxy"
    listed = (await client.get("/v1/quotas", headers=SERVICE)).json()["items"]
    assert {item["enforced_by"] for item in listed} == {"proxy"}
