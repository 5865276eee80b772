"""When the volume fails, the request fails with 503 and the metadata does not move."""

from __future__ import annotations

import uuid

import httpx

from app.config import Settings
from tests.support.app import SERVICE
from tests.vfolders.test_api import problem, vfolder_dir


async def test_create_on_a_failing_volume_leaves_no_row(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    vfolder_id = uuid.uuid4()
    volume_root = settings.data_dir / "volumes" / "local"
    (volume_root / vfolder_id.hex[:2]).write_text("a file where a shard directory must go")
    response = await client.post(
        "/v1/vfolders",
        json={"id": str(vfolder_id), "name": "n", "volume": "local", "owner_id": "alice"},
        headers=SERVICE,
    )
    problem(response, 503, "/problems/storage-unavailable")
    missing = await client.get(f"/v1/vfolders/{vfolder_id}", headers=SERVICE)
    problem(missing, 404, "/problems/vfolder-not-found")
    # The name was not taken by the failed attempt.
    (volume_root / vfolder_id.hex[:2]).unlink()
    retry = await client.post(
        "/v1/vfolders",
        json={"id": str(vfolder_id), "name": "n", "volume": "local", "owner_id": "alice"},
        headers=SERVICE,
    )
    assert retry.status_code == 201


async def test_delete_on_a_failing_volume_keeps_the_vfolder(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    created = await client.post(
        "/v1/vfolders",
        json={"name": "keep", "volume": "local", "owner_id": "alice"},
        headers=SERVICE,
    )
    vfolder_id = created.json()["id"]
    trash = settings.data_dir / "volumes" / "local" / ".trash"
    trash.rmdir()
    trash.write_text("the trash area is broken")

    response = await client.delete(f"/v1/vfolders/{vfolder_id}", headers=SERVICE)
    problem(response, 503, "/problems/storage-unavailable")
    got = await client.get(f"/v1/vfolders/{vfolder_id}", headers=SERVICE)
    assert got.json()["status"] == "ready"
    assert vfolder_dir(settings, vfolder_id).is_dir()


async def test_readiness_fails_when_a_volume_is_not_writable(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await client.get("/health/ready")).status_code == 200
    staging = settings.data_dir / "volumes" / "local" / ".staging"
    staging.rmdir()
    staging.write_text("not a directory")
    response = await client.get("/health/ready")
    body = problem(response, 503, "/problems/not-ready")
    assert body["checks"]["volume:local"]["status"] == "failed"
    assert body["checks"]["database"]["status"] == "ok"
    assert (await client.get("/health/live")).status_code == 200
