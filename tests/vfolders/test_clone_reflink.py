"""On a filesystem with reflinks (a loop-mounted XFS), the generic POSIX driver's clone shares
extents instead of copying: every file reflinked, free space barely moves."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from app.config import Settings
from tests.support.app import bearer, client_with_volumes, user_token
from tests.support.loop_mounts import scratch_on
from tests.support.tasks import finished_task
from tests.vfolders.test_clone import tree

ALICE = bearer(user_token("alice"))
MIB = 1024 * 1024


@pytest.fixture
async def xfs_client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    volume = scratch_on("xfs") / "volume"
    volumes = f'[volumes.local]\ndriver = "posix"\npath = "{volume}"\n'
    async with client_with_volumes(tmp_path, volumes) as client_and_settings:
        yield client_and_settings


async def test_a_clone_on_xfs_is_made_of_reflinks(
    xfs_client: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, settings = xfs_client
    volume = settings.volumes()["local"].path
    made = await client.post("/v1/vfolders", json={"name": "x", "volume": "local"}, headers=ALICE)
    source = made.json()["id"].replace("-", "")
    root = volume / source[:2] / source[2:4] / source
    for n in range(16):
        (root / f"f{n}.bin").write_bytes(os.urandom(4 * MIB))
    (root / "link").symlink_to("f0.bin")
    await anyio.run_process(["sync"])
    reconciled = await client.post(f"/v1/vfolders/{made.json()['id']}/reconcile", headers=ALICE)
    assert reconciled.status_code == 200
    free_before = shutil.disk_usage(volume).free

    started = await client.post(
        f"/v1/vfolders/{made.json()['id']}/clone",
        json={"name": "x2", "volume": "local"},
        headers=ALICE,
    )
    assert started.status_code == 202, started.text
    task = await finished_task(client, started.headers["location"], ALICE)
    assert task["state"] == "succeeded", task
    assert task["result"]["reflinked_files"] == 16
    await anyio.run_process(["sync"])
    assert free_before - shutil.disk_usage(volume).free < 4 * MIB  # not the 64 MiB a copy takes
    target = started.json()["vfolder"]["id"].replace("-", "")
    assert tree(volume / target[:2] / target[2:4] / target) == tree(root)
