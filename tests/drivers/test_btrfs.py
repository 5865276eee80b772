"""The btrfs driver on a real, loop-mounted btrfs: subvolumes, kernel-enforced quotas,
read-only snapshots, clones that share extents — directly, and through the API."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
import pytest

from app.config import Settings
from drivers.base import capabilities_of
from drivers.btrfs import (
    BtrfsClones,
    BtrfsQgroups,
    BtrfsSnapshots,
    btrfs_driver,
    parse_qgroup_show,
)
from drivers.driver import Driver
from drivers.paths import parse_relative_path
from tests.support.app import SERVICE, bearer, client_with_volumes, user_token
from tests.support.loop_mounts import btrfs_scratch
from tests.support.tasks import finished_task

MIB = 1024 * 1024
ALICE = bearer(user_token("alice"))

QGROUP_SHOW = """\
Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path
--------    ----------    ---------  --------------  -------------   ----
0/256         10469376     10469376        10485760           none   sv1
"""


def test_qgroup_output_is_read() -> None:
    assert parse_qgroup_show(QGROUP_SHOW) == (10469376, 10485760)
    assert parse_qgroup_show(QGROUP_SHOW.replace("10485760", "none")) == (10469376, None)


@pytest.fixture
async def driver() -> Driver:
    built = btrfs_driver(btrfs_scratch() / "volume")
    await built.initialize()
    return built


def qgroups(driver: Driver) -> BtrfsQgroups:
    assert isinstance(driver.quota, BtrfsQgroups) and driver.usage is driver.quota
    return driver.quota


def snapshots(driver: Driver) -> BtrfsSnapshots:
    assert isinstance(driver.snapshots, BtrfsSnapshots)
    return driver.snapshots


def clones(driver: Driver) -> BtrfsClones:
    assert isinstance(driver.clone, BtrfsClones)
    return driver.clone


def write(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for _ in range(size // MIB):
            out.write(os.urandom(MIB))
        out.flush()
        os.fsync(out.fileno())


def free_bytes(path: Path) -> int:
    subprocess.run(["btrfs", "filesystem", "sync", str(path)], check=True, capture_output=True)
    return shutil.disk_usage(path).free


async def test_every_capability_is_the_filesystems_own(driver: Driver) -> None:
    assert capabilities_of(driver) == ["fast-clone", "fast-usage", "quota", "snapshot"]
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    shown = await anyio.run_process(
        ["btrfs", "subvolume", "show", str(driver.vfolder_path(vfolder_id))], check=False
    )
    assert shown.returncode == 0  # a subvolume, not a plain directory


async def test_a_quota_is_enforced_by_the_kernel(driver: Driver) -> None:
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    await qgroups(driver).set_quota(vfolder_id, limit_bytes=10 * MIB)
    assert await qgroups(driver).get_quota(vfolder_id) == 10 * MIB
    with pytest.raises(OSError) as refused:  # a container writing through the mount
        write(driver.vfolder_path(vfolder_id) / "big", 20 * MIB)
    assert refused.value.errno == errno.EDQUOT
    (driver.vfolder_path(vfolder_id) / "big").unlink()
    await qgroups(driver).set_quota(vfolder_id, limit_bytes=None)
    assert await qgroups(driver).get_quota(vfolder_id) is None
    write(driver.vfolder_path(vfolder_id) / "big", 20 * MIB)
    await anyio.run_process(["btrfs", "filesystem", "sync", str(driver.root)])
    assert await qgroups(driver).usage_bytes(vfolder_id) >= 20 * MIB


async def test_a_burst_of_usage_reads_shares_its_syncs(driver: Driver) -> None:
    """Each read counts what was written before it, yet twenty at once commit the
    filesystem at most twice, not twenty times."""
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    write(driver.vfolder_path(vfolder_id) / "through-the-mount", 3 * MIB)
    before = qgroups(driver).shared_sync.syncs
    figures: list[int] = []

    async def read() -> None:
        figures.append(await qgroups(driver).usage_bytes(vfolder_id))

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(read)
    assert len(figures) == 20 and min(figures) >= 3 * MIB
    assert 1 <= qgroups(driver).shared_sync.syncs - before <= 2
    write(driver.vfolder_path(vfolder_id) / "one-more", 2 * MIB)
    assert await qgroups(driver).usage_bytes(vfolder_id) >= 5 * MIB  # a later read syncs again


async def test_snapshots_are_read_only_listed_and_deleted(driver: Driver) -> None:
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    (driver.vfolder_path(vfolder_id) / "a.txt").write_text("before")
    made = await snapshots(driver).create_snapshot(vfolder_id, name="nightly-1")
    (driver.vfolder_path(vfolder_id) / "a.txt").write_text("after")
    frozen = snapshots(driver).snapshot_path(vfolder_id, "nightly-1")
    assert (frozen / "a.txt").read_text() == "before"
    with pytest.raises(OSError) as refused:
        (frozen / "a.txt").write_text("tampered")
    assert refused.value.errno == errno.EROFS
    assert [s.name for s in await snapshots(driver).list_snapshots(vfolder_id)] == [made.name]
    await snapshots(driver).delete_snapshot(vfolder_id, name="nightly-1")
    assert await snapshots(driver).list_snapshots(vfolder_id) == []


async def test_a_clone_shares_extents_so_free_space_barely_moves(driver: Driver) -> None:
    source, target = uuid.uuid4(), uuid.uuid4()
    await driver.create_vfolder(source)
    write(driver.vfolder_path(source) / "data", 64 * MIB)
    before = free_bytes(driver.root)
    await clones(driver).clone_vfolder(source, target)
    after = free_bytes(driver.root)
    assert (driver.vfolder_path(target) / "data").read_bytes() == (
        driver.vfolder_path(source) / "data"
    ).read_bytes()
    assert before - after < 4 * MIB  # metadata only; a copy would take 64 MiB


@pytest.fixture
async def btrfs_client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    volume = btrfs_scratch() / "volume"
    volumes = f'[volumes.local]\ndriver = "btrfs"\npath = "{volume}"\n'
    async with client_with_volumes(tmp_path, volumes) as client_and_settings:
        yield client_and_settings


async def test_through_the_api_quotas_reach_the_kernel_and_clones_are_instant(
    btrfs_client: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, settings = btrfs_client
    volumes = (await client.get("/v1/volumes", headers=SERVICE)).json()
    assert set(volumes["items"][0]["capabilities"]) >= {"quota", "snapshot", "fast-clone"}
    made = await client.post("/v1/vfolders", json={"name": "d", "volume": "local"}, headers=ALICE)
    vfolder_id = made.json()["id"]
    limited = await client.put(
        f"/v1/quotas/vfolder/{vfolder_id}", json={"limit_bytes": 8 * MIB}, headers=ALICE
    )
    assert limited.status_code == 200, limited.text
    root = settings.volumes()["local"].path
    hex_id = vfolder_id.replace("-", "")
    path = root / hex_id[:2] / hex_id[2:4] / hex_id
    with pytest.raises(OSError) as refused:
        write(path / "bypass", 16 * MIB)  # not through the proxy: the kernel says no
    assert refused.value.errno == errno.EDQUOT
    (path / "bypass").unlink()
    stored = await client.put(
        f"/v1/vfolders/{vfolder_id}/files/x.bin", content=os.urandom(4 * MIB), headers=ALICE
    )
    assert stored.status_code == 201

    started = await client.post(
        f"/v1/vfolders/{vfolder_id}/clone", json={"name": "twin", "volume": "local"}, headers=ALICE
    )
    assert started.status_code == 202, started.text
    task = await finished_task(client, started.headers["location"], ALICE)
    assert task["state"] == "succeeded", task
    twin = started.json()["vfolder"]["id"].replace("-", "")
    assert (root / twin[:2] / twin[2:4] / twin / "x.bin").read_bytes() == (
        path / "x.bin"
    ).read_bytes()


async def test_snapshots_through_the_api_create_browse_restore_and_delete(
    btrfs_client: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, _settings = btrfs_client
    made = await client.post("/v1/vfolders", json={"name": "s", "volume": "local"}, headers=ALICE)
    base = f"/v1/vfolders/{made.json()['id']}"
    await client.put(f"{base}/files/a.txt", content=b"version 1", headers=ALICE)
    taken = await client.post(f"{base}/snapshots", json={"name": "s1"}, headers=ALICE)
    assert taken.status_code == 201, taken.text
    await client.put(f"{base}/files/a.txt", content=b"version 2, longer", headers=ALICE)
    await client.put(f"{base}/files/b.txt", content=b"new", headers=ALICE)

    listed = (await client.get(f"{base}/snapshots", headers=ALICE)).json()["items"]
    assert [s["name"] for s in listed] == ["s1"] and listed[0]["size_bytes"] is not None
    browsed = (await client.get(f"{base}/snapshots/s1/list", headers=ALICE)).json()["items"]
    assert [(e["name"], e["size"]) for e in browsed] == [("a.txt", 9)]

    one = await client.post(f"{base}/snapshots/s1/restore", json={"path": "a.txt"}, headers=ALICE)
    assert one.status_code == 204, one.text
    assert (await client.get(f"{base}/files/a.txt", headers=ALICE)).content == b"version 1"
    quota = f"/v1/quotas/vfolder/{made.json()['id']}"
    assert (await client.get(quota, headers=ALICE)).json()["used_bytes"] == 12  # the ledger

    whole = await client.post(f"{base}/snapshots/s1/restore", json={}, headers=ALICE)
    assert whole.status_code == 204, whole.text
    assert (await client.get(f"{base}/files/b.txt", headers=ALICE)).status_code == 404
    usage = (await client.get(f"{base}/usage", headers=ALICE)).json()
    assert (usage["source"], usage["file_count"]) == ("native", 1)
    assert (await client.get(quota, headers=ALICE)).json()["used_bytes"] == 9

    gone = await client.delete(f"{base}/snapshots/s1", headers=ALICE)
    assert gone.status_code == 204
    assert (await client.get(f"{base}/snapshots", headers=ALICE)).json()["items"] == []


async def test_usage_is_the_filesystems_own_and_counts_a_mount_write_at_once(
    btrfs_client: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, _settings = btrfs_client
    made = await client.post("/v1/vfolders", json={"name": "n", "volume": "local"}, headers=ALICE)
    base = f"/v1/vfolders/{made.json()['id']}"
    before = (await client.get(f"{base}/usage", headers=ALICE)).json()
    assert before["source"] == "native"
    host_path = Path((await client.get(f"{base}/mount", headers=ALICE)).json()["host_path"])
    asked_after = datetime.now(UTC)
    with (host_path / "container.bin").open("wb") as out:  # as a container would: no sync
        out.write(os.urandom(3 * MIB))

    after = (await client.get(f"{base}/usage", headers=ALICE)).json()
    assert after["source"] == "native"
    assert after["used_bytes"] >= before["used_bytes"] + 3 * MIB
    assert datetime.fromisoformat(after["as_of"]) >= asked_after


async def test_a_vfolder_limit_is_the_backends_a_user_limit_the_proxys(
    btrfs_client: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, _settings = btrfs_client
    made = await client.post("/v1/vfolders", json={"name": "q", "volume": "local"}, headers=ALICE)
    vfolder_id = made.json()["id"]
    limited = await client.put(
        f"/v1/quotas/vfolder/{vfolder_id}", json={"limit_bytes": 8 * MIB}, headers=ALICE
    )
    assert limited.json()["enforced_by"] == "backend"
    user = await client.put(
        "/v1/quotas/user/alice?volume=local", json={"limit_bytes": 64 * MIB}, headers=SERVICE
    )
    assert user.json()["enforced_by"] == "proxy"


async def test_a_directory_deleted_inside_a_subvolume_is_removed_where_it_is(
    driver: Driver,
) -> None:
    """A tree cannot leave the vfolder's subvolume by a rename (EXDEV): the recursive delete
    removes it in place, and says what it freed."""
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    tree = driver.vfolder_path(vfolder_id) / "results" / "run-1"
    tree.mkdir(parents=True)
    write(tree / "weights.bin", 3 * MIB)
    (tree / "log.txt").write_text("done")
    freed = await driver.files.delete(vfolder_id, parse_relative_path("results"), recursive=True)
    assert freed.bytes == 3 * MIB + 4 and freed.entries == 4
    assert list(driver.vfolder_path(vfolder_id).iterdir()) == []
    assert list(driver.layout.trash.iterdir()) == []
