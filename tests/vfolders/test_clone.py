"""Cloning a vfolder as a task: exact trees (files, modes, mtimes, symlinks never followed,
empty directories), quota reserved first, nothing left behind by a failure."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from tests.support.app import SERVICE, bearer, client_with_volumes, user_token
from tests.support.tasks import finished_task

ALICE = bearer(user_token("alice"))


def vfolder_root(settings: Settings, vfolder_id: str) -> Path:
    hex_id = vfolder_id.replace("-", "")
    return settings.data_dir / "volumes" / "local" / hex_id[:2] / hex_id[2:4] / hex_id


def tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything a clone must keep: kind, mode, mtime, content hash or link target."""
    found: dict[str, tuple[Any, ...]] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            st = path.lstat()
            relative = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                found[relative] = ("link", str(path.readlink()), st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                found[relative] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[relative] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, digest)
    return found


async def make_vfolder(client: httpx.AsyncClient, name: str) -> str:
    made = await client.post("/v1/vfolders", json={"name": name, "volume": "local"}, headers=ALICE)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def finished(client: httpx.AsyncClient, location: str) -> dict[str, Any]:
    return await finished_task(client, location, ALICE)


async def clone(client: httpx.AsyncClient, source: str, name: str) -> httpx.Response:
    return await client.post(
        f"/v1/vfolders/{source}/clone", json={"name": name, "volume": "local"}, headers=ALICE
    )


async def test_a_clone_of_10000_files_with_links_and_empty_dirs_is_exact(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    source = await make_vfolder(client, "source")
    root = vfolder_root(settings, source)
    for d in range(100):  # written by a container, through the mount
        directory = root / f"d{d:03}"
        directory.mkdir()
        for f in range(100):
            (directory / f"f{f:03}.bin").write_bytes(f"{d}/{f}".encode() * (f + 1))
        (directory / "f000.bin").chmod(0o600)
    (root / "empty" / "deeper").mkdir(parents=True)
    (root / "link-in").symlink_to("d001/f001.bin")
    (root / "link-out").symlink_to("/etc/passwd")  # copied as a link, never followed
    (root / "d002").chmod(0o750)
    os.utime(root / "d003", ns=(1_000_000_000, 1_000_000_000))
    assert (await client.post(f"/v1/vfolders/{source}/reconcile", headers=ALICE)).is_success

    started = await clone(client, source, "copy")
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["vfolder"]["status"] == "cloning"
    task = await finished(client, started.headers["location"])
    assert task["state"] == "succeeded", task
    target = body["vfolder"]["id"]
    assert tree(vfolder_root(settings, target)) == tree(root)
    assert task["result"]["entries"] == 10_000 + 100 + 2 + 2
    got = (await client.get(f"/v1/vfolders/{target}", headers=ALICE)).json()
    assert got["status"] == "ready" and got["cloned_from"] == source
    usage = (await client.get(f"/v1/vfolders/{target}/usage", headers=ALICE)).json()
    source_usage = (await client.get(f"/v1/vfolders/{source}/usage", headers=ALICE)).json()
    assert (usage["used_bytes"], usage["file_count"]) == (
        source_usage["used_bytes"],
        source_usage["file_count"],
    )
    assert usage["source"] == "scan"  # its ledger starts from a walk of the copy
    assert datetime.fromisoformat(usage["as_of"]) > datetime.fromisoformat(source_usage["as_of"])
    quota = (await client.get(f"/v1/quotas/vfolder/{target}", headers=SERVICE)).json()
    assert quota["reserved_bytes"] == 0
    staging = settings.data_dir / "volumes" / "local" / ".staging"
    assert not [p for p in staging.iterdir() if p.name.startswith("copy-")]


async def test_a_clone_that_does_not_fit_the_owners_quota_is_refused_up_front(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    source = await make_vfolder(client, "big")
    put = await client.put(
        f"/v1/vfolders/{source}/files/data.bin", content=b"x" * 5000, headers=ALICE
    )
    assert put.status_code == 201
    limited = await client.put(
        "/v1/quotas/user/alice",
        params={"volume": "local"},
        json={"limit_bytes": 8000},
        headers=SERVICE,
    )
    assert limited.status_code == 200
    refused = await clone(client, source, "too-much")
    assert refused.status_code == 413, refused.text
    assert refused.json()["scope_type"] == "user"
    names = [v["name"] for v in (await client.get("/v1/vfolders", headers=ALICE)).json()["items"]]
    assert names == ["big"]


async def test_a_failed_clone_leaves_nothing_behind(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    source = await make_vfolder(client, "vanishing")
    vfolder_root(settings, source).rmdir()  # its storage went away
    started = await clone(client, source, "orphan")
    assert started.status_code == 202
    task = await finished(client, started.headers["location"])
    assert task["state"] == "failed" and task["problem"]["status"] >= 400
    target = started.json()["vfolder"]["id"]
    assert (await client.get(f"/v1/vfolders/{target}", headers=ALICE)).json()["status"] == (
        "deleted"
    )
    assert not vfolder_root(settings, target).exists()
    quota = await client.get("/v1/quotas/user/alice", params={"volume": "local"}, headers=ALICE)
    assert quota.json()["reserved_bytes"] == 0
    assert (await make_vfolder(client, "orphan")) != target  # the name is free again


async def test_snapshots_where_the_backend_has_none_are_a_clear_409(
    client: httpx.AsyncClient,
) -> None:
    vfolder = await make_vfolder(client, "plain")
    refused = await client.post(
        f"/v1/vfolders/{vfolder}/snapshots", json={"name": "s1"}, headers=ALICE
    )
    assert refused.status_code == 409
    assert refused.json()["type"] == "/problems/capability-missing"
    assert refused.json()["capability"] == "snapshot"


async def test_a_clone_to_another_volume_is_a_copy(tmp_path: Path) -> None:
    volumes = (
        f'[volumes.local]\npath = "{tmp_path / "a"}"\n[volumes.other]\npath = "{tmp_path / "b"}"\n'
    )
    async with client_with_volumes(tmp_path, volumes) as (client, _settings):
        source = await make_vfolder(client, "here")
        await client.put(
            f"/v1/vfolders/{source}/files/d/x.bin?parents=true", content=b"x" * 999, headers=ALICE
        )
        started = await client.post(
            f"/v1/vfolders/{source}/clone", json={"name": "there", "volume": "other"}, headers=ALICE
        )
        assert started.status_code == 202, started.text
        task = await finished(client, started.headers["location"])
        assert task["state"] == "succeeded", task
        target = started.json()["vfolder"]["id"].replace("-", "")
        copied = tmp_path / "b" / target[:2] / target[2:4] / target / "d" / "x.bin"
        assert copied.read_bytes() == b"x" * 999
        got = (await client.get(f"/v1/vfolders/{target}", headers=ALICE)).json()
        assert (got["volume"], got["status"]) == ("other", "ready")


async def test_a_clone_onto_a_taken_name_or_id_is_a_409_like_a_create(
    client: httpx.AsyncClient,
) -> None:
    """A Manager (service key) clones onto a name its user already has, then onto an id
    already used: both are refused as a create would refuse them, never a 500."""
    source = await make_vfolder(client, "source")
    await make_vfolder(client, "taken")
    owner = {"owner_type": "user", "owner_id": "alice", "volume": "local"}

    onto_name = await client.post(
        f"/v1/vfolders/{source}/clone", json={**owner, "name": "taken"}, headers=SERVICE
    )
    assert onto_name.status_code == 409, onto_name.text
    assert onto_name.headers["content-type"] == "application/problem+json"
    assert onto_name.json()["type"] == "/problems/vfolder-name-conflict"

    onto_id = await client.post(
        f"/v1/vfolders/{source}/clone",
        json={**owner, "name": "fresh", "id": source},
        headers=SERVICE,
    )
    assert onto_id.status_code == 409, onto_id.text
    assert onto_id.json()["type"] == "/problems/vfolder-id-conflict"

    # Nothing was left half-made: the name is still free for a real clone.
    started = await client.post(
        f"/v1/vfolders/{source}/clone", json={**owner, "name": "fresh"}, headers=SERVICE
    )
    assert started.status_code == 202, started.text
