"""The CephFS driver on a real single-node Ceph cluster (tests/support/cephfs.py: started
once per session where the machine allows, skipped with the reason otherwise), through the
HTTP API where it matters: a quota set through the API stops a write through the mount
(EDQUOT), the usage the API reports is the MDS's ``rbytes``, and snapshots are taken,
browsed, restored and dropped through the API.

CephFS facts the assertions allow for: the client enforces the quota lazily (buffered
writes overshoot by up to a few MiB, so the writes here ``fsync`` each MiB and still allow
some slack), and ``rbytes`` follows a write within seconds, not at once."""

from __future__ import annotations

import errno
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from app.config import Settings
from drivers.cephfs import QUOTA_XATTR, RBYTES_XATTR, CephQuota, cephfs_driver
from drivers.driver import Driver
from drivers.errors import UnsafePath
from drivers.paths import parse_relative_path
from tests.support.app import bearer, client_with_volumes, user_token
from tests.support.cephfs import cephfs_scratch

MIB = 1024 * 1024
ALICE = bearer(user_token("alice"))
RSTAT_WAIT_SECONDS = 30.0  # the MDS propagates rbytes lazily (about 6 s seen)
QUOTA_SLACK = 4 * MIB  # what the client's lazy enforcement may let through past the limit


@pytest.fixture
async def ceph_client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    volume = cephfs_scratch() / "volume"
    volumes = f'[volumes.ceph]\ndriver = "cephfs"\npath = "{volume}"\n'
    async with client_with_volumes(tmp_path, volumes) as client_and_settings:
        yield client_and_settings


@pytest.fixture
async def driver() -> Driver:
    built = cephfs_driver(cephfs_scratch() / "volume")
    await built.initialize()
    return built


async def new_vfolder(client: httpx.AsyncClient, name: str) -> tuple[str, Path]:
    made = await client.post("/v1/vfolders", json={"name": name, "volume": "ceph"}, headers=ALICE)
    assert made.status_code == 201, made.text
    vfolder_id = made.json()["id"]
    mount = await client.get(f"/v1/vfolders/{vfolder_id}/mount", headers=ALICE)
    return vfolder_id, Path(mount.json()["host_path"])


def write_through_the_mount(path: Path, limit: int) -> int:
    """1 MiB writes, each fsync-ed, as a container would write; the bytes written when the
    filesystem said EDQUOT (re-raised), or all of ``limit`` bytes."""
    written = 0
    with path.open("wb") as out:
        while written < limit:
            try:
                out.write(os.urandom(MIB))
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                exc.add_note(f"after {written} bytes")
                exc.args = (*exc.args, written)
                raise
            written += MIB
    return written


async def rbytes_reaches(path: Path, at_least: int) -> int:
    deadline = time.monotonic() + RSTAT_WAIT_SECONDS
    while True:
        value = int(os.getxattr(path, RBYTES_XATTR))
        if value >= at_least or time.monotonic() > deadline:
            return value
        await anyio.sleep(0.5)


async def test_a_quota_set_through_the_api_stops_a_write_through_the_mount(
    ceph_client: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, _settings = ceph_client
    volumes = (await client.get("/v1/volumes", headers=bearer(user_token("alice")))).json()
    assert set(volumes["items"][0]["capabilities"]) >= {"quota", "fast-usage", "snapshot"}
    vfolder_id, host_path = await new_vfolder(client, "q")
    limited = await client.put(
        f"/v1/quotas/vfolder/{vfolder_id}", json={"limit_bytes": 8 * MIB}, headers=ALICE
    )
    assert limited.status_code == 200, limited.text
    assert limited.json()["enforced_by"] == "backend"
    assert os.getxattr(host_path, QUOTA_XATTR) == b"8388608"

    with pytest.raises(OSError) as refused:
        await anyio.to_thread.run_sync(write_through_the_mount, host_path / "bypass", 32 * MIB)
    assert refused.value.errno == errno.EDQUOT
    size = (host_path / "bypass").stat().st_size
    assert 8 * MIB - MIB <= size <= 8 * MIB + QUOTA_SLACK, size

    # Unset through the API: the attribute is gone (ENODATA) and the mount takes more.
    (host_path / "bypass").unlink()
    unset = await client.delete(f"/v1/quotas/vfolder/{vfolder_id}", headers=ALICE)
    assert unset.status_code in (200, 204), unset.text
    with pytest.raises(OSError) as gone:
        os.getxattr(host_path, QUOTA_XATTR)
    assert gone.value.errno == errno.ENODATA
    assert await anyio.to_thread.run_sync(write_through_the_mount, host_path / "big", 12 * MIB)


async def test_usage_through_the_api_is_the_mdss_rbytes(
    ceph_client: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, _settings = ceph_client
    vfolder_id, host_path = await new_vfolder(client, "u")
    stored = await client.put(
        f"/v1/vfolders/{vfolder_id}/files/api.bin", content=os.urandom(MIB), headers=ALICE
    )
    assert stored.status_code == 201, stored.text
    (host_path / "sub").mkdir()
    (host_path / "sub" / "container.bin").write_bytes(os.urandom(3 * MIB))  # not via the API

    expected = 4 * MIB
    rbytes = await rbytes_reaches(host_path, expected)
    assert rbytes == expected
    usage = (await client.get(f"/v1/vfolders/{vfolder_id}/usage", headers=ALICE)).json()
    assert usage["source"] == "native"
    assert usage["used_bytes"] == int(os.getxattr(host_path, RBYTES_XATTR)) == expected


async def test_snapshots_through_the_api_create_browse_restore_and_delete(
    ceph_client: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, _settings = ceph_client
    vfolder_id, host_path = await new_vfolder(client, "s")
    base = f"/v1/vfolders/{vfolder_id}"
    limit = 64 * MIB
    await client.put(f"/v1/quotas/vfolder/{vfolder_id}", json={"limit_bytes": limit}, headers=ALICE)
    await client.put(f"{base}/files/a.txt", content=b"version 1", headers=ALICE)
    await client.post(f"{base}/mkdir", json={"path": "d"}, headers=ALICE)
    await client.put(f"{base}/files/d/inner.txt", content=b"inner", headers=ALICE)
    taken = await client.post(f"{base}/snapshots", json={"name": "s1"}, headers=ALICE)
    assert taken.status_code == 201, taken.text
    assert (host_path / ".snap" / "s1" / "a.txt").read_bytes() == b"version 1"
    again = await client.post(f"{base}/snapshots", json={"name": "s1"}, headers=ALICE)
    assert again.status_code == 400, again.text

    await client.put(f"{base}/files/a.txt", content=b"version 2, longer", headers=ALICE)
    await client.put(f"{base}/files/b.txt", content=b"new", headers=ALICE)

    listed = (await client.get(f"{base}/snapshots", headers=ALICE)).json()["items"]
    assert [s["name"] for s in listed] == ["s1"]
    browsed = (await client.get(f"{base}/snapshots/s1/list", headers=ALICE)).json()["items"]
    assert sorted((e["name"], e["type"]) for e in browsed) == [("a.txt", "file"), ("d", "dir")]
    inner = await client.get(f"{base}/snapshots/s1/list", params={"path": "d"}, headers=ALICE)
    assert [e["name"] for e in inner.json()["items"]] == ["inner.txt"]
    # .snap is nobody's file: never listed, never reachable through the API.
    listing = (await client.get(f"{base}/list", headers=ALICE)).json()["items"]
    assert ".snap" not in {e["name"] for e in listing}
    sneaky = await client.get(f"{base}/files/.snap/s1/a.txt", headers=ALICE)
    assert sneaky.status_code == 400, sneaky.text
    made_snap = await client.post(f"{base}/mkdir", json={"path": "d/.snap/x"}, headers=ALICE)
    assert made_snap.status_code == 400 and not (host_path / "d" / ".snap" / "x").exists()

    one = await client.post(f"{base}/snapshots/s1/restore", json={"path": "a.txt"}, headers=ALICE)
    assert one.status_code == 204, one.text
    assert (await client.get(f"{base}/files/a.txt", headers=ALICE)).content == b"version 1"

    await client.put(f"{base}/files/a.txt", content=b"version 3", headers=ALICE)
    whole = await client.post(f"{base}/snapshots/s1/restore", json={}, headers=ALICE)
    assert whole.status_code == 204, whole.text
    assert (await client.get(f"{base}/files/b.txt", headers=ALICE)).status_code == 404
    assert (await client.get(f"{base}/files/a.txt", headers=ALICE)).content == b"version 1"
    assert (await client.get(f"{base}/files/d/inner.txt", headers=ALICE)).content == b"inner"
    # The vfolder directory stayed: its quota and its snapshots are still there.
    assert os.getxattr(host_path, QUOTA_XATTR) == str(limit).encode()
    assert [
        s["name"] for s in (await client.get(f"{base}/snapshots", headers=ALICE)).json()["items"]
    ] == ["s1"]

    gone = await client.delete(f"{base}/snapshots/s1", headers=ALICE)
    assert gone.status_code == 204, gone.text
    assert (await client.get(f"{base}/snapshots", headers=ALICE)).json()["items"] == []
    assert list((host_path / ".snap").iterdir()) == []


async def test_a_directory_deleted_inside_a_quota_realm_is_removed(
    ceph_client: tuple[httpx.AsyncClient, Settings],
) -> None:
    """A rename out of a quota realm is refused (EXDEV): the directory goes where it is."""
    client, _settings = ceph_client
    vfolder_id, host_path = await new_vfolder(client, "d")
    base = f"/v1/vfolders/{vfolder_id}"
    await client.put(
        f"/v1/quotas/vfolder/{vfolder_id}", json={"limit_bytes": 32 * MIB}, headers=ALICE
    )
    await client.put(f"{base}/files/tree/a/b.bin", content=os.urandom(MIB), headers=ALICE)
    deleted = await client.post(
        f"{base}/delete", json={"paths": ["tree"], "recursive": True}, headers=ALICE
    )
    assert deleted.status_code == 200, deleted.text
    assert not (host_path / "tree").exists()


async def test_a_deleted_vfolder_with_snapshots_is_purged(driver: Driver) -> None:
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    assert isinstance(driver.quota, CephQuota)
    await driver.quota.set_quota(vfolder_id, limit_bytes=16 * MIB)
    (driver.vfolder_path(vfolder_id) / "f").write_bytes(b"f")
    assert driver.snapshots is not None
    await driver.snapshots.create_snapshot(vfolder_id, name="keep")
    entry = await driver.move_to_trash(vfolder_id)
    await driver.purge(entry)
    assert await driver.list_trash() == []


async def test_snap_paths_are_refused_on_the_real_mount(driver: Driver) -> None:
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    (driver.vfolder_path(vfolder_id) / "d").mkdir()
    for path in (".snap/x", "d/.snap/x"):
        with pytest.raises(UnsafePath):
            await driver.files.mkdir(
                vfolder_id, parse_relative_path(path), parents=False, exist_ok=False
            )
    assert list((driver.vfolder_path(vfolder_id) / ".snap").iterdir()) == []
    assert list((driver.vfolder_path(vfolder_id) / "d" / ".snap").iterdir()) == []
