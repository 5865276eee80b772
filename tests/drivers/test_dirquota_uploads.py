"""Every HTTP upload path (PUT, a multipart form, tus) on a volume of the example
directory-quota backend (tests/drivers/dirquota) stages inside the vfolder, the quota
boundary, and commits by renaming the staged file: the file at the destination is the staged
inode itself, never a copy of it. The staging directory is never seen through the API."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import httpx
import pytest

from drivers.base import Staged
from drivers.driver import Driver
from drivers.fsops import staged_file
from drivers.paths import RelativePath
from drivers.registry import Backend, register, unregister
from drivers.staging import VFOLDER_STAGING_DIR
from drivers.types import Committed, FileVersion
from tests.drivers import dirquota
from tests.support.app import SERVICE, bearer, client_with_volumes, user_token

ALICE = bearer(user_token("alice"))
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


@dataclass(frozen=True)
class Commit:
    """One commit as the driver saw it."""

    staging_dir: Path
    staged_inode: int
    committed: Committed


def counting(commits: list[Commit]) -> Backend:
    """The example backend, each driver's ``commit_staged`` wrapped to record what it moved
    (the filesystem itself is untouched)."""

    def build(root: Path, *, options: dict[str, Any]) -> Driver:
        driver = dirquota.dirquota_driver(root, options=options)
        real = driver.files.commit_staged

        async def commit_staged(
            staged: Staged,
            vfolder_id: UUID,
            path: RelativePath,
            *,
            replace: bool,
            parents: bool,
            if_match: FileVersion | None = None,
            durable: bool = True,
        ) -> Committed:
            file = staged_file(staged)

            def before() -> tuple[Path, int]:
                where = Path(f"/proc/self/fd/{file.staging_fd}").readlink()
                return where, os.fstat(file.fd).st_ino

            staging_dir, inode = await anyio.to_thread.run_sync(before)
            committed = await real(
                staged,
                vfolder_id,
                path,
                replace=replace,
                parents=parents,
                if_match=if_match,
                durable=durable,
            )
            commits.append(Commit(staging_dir, inode, committed))
            return committed

        driver.files.commit_staged = commit_staged  # type: ignore[method-assign]
        return driver

    return Backend(name="dirquota", build=build, options=dirquota.BACKEND.options)


@pytest.fixture
def commits() -> Iterator[list[Commit]]:
    seen: list[Commit] = []
    register(counting(seen))
    yield seen
    unregister("dirquota")


@dataclass
class Folder:
    client: httpx.AsyncClient
    id: str
    root: Path

    def url(self, suffix: str) -> str:
        return f"/v1/vfolders/{self.id}/{suffix}"


@pytest.fixture
async def folder(tmp_path: Path, commits: list[Commit]) -> AsyncIterator[Folder]:
    volumes = f'[volumes.local]\ndriver = "dirquota"\npath = "{tmp_path / "volume"}"\n'
    async with client_with_volumes(tmp_path, volumes) as (client, settings):
        made = await client.post(
            "/v1/vfolders", json={"name": "dq", "volume": "local"}, headers=ALICE
        )
        assert made.status_code == 201, made.text
        vfolder_id = made.json()["id"]
        hex_id = UUID(vfolder_id).hex
        root = settings.volumes()["local"].path / hex_id[:2] / hex_id[2:4] / hex_id
        yield Folder(client, vfolder_id, root)


def meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


async def test_every_upload_path_commits_by_rename_inside_the_boundary(
    folder: Folder, commits: list[Commit]
) -> None:
    c = folder.client
    put = await c.put(folder.url("files/put.txt"), content=b"by put", headers=ALICE)
    assert put.status_code == 201, put.text

    form = await c.post(
        folder.url("upload"),
        params={"dir": "form", "parents": "true"},
        files=[("files", ("a.txt", b"alpha", "text/plain")), ("files", ("b.bin", b"bb", None))],
        headers=ALICE,
    )
    assert form.status_code == 201, form.text

    created = await c.post(
        folder.url("uploads"),
        headers={**ALICE, **TUS, "Upload-Length": "7", "Upload-Metadata": meta(path="tus.bin")},
    )
    assert created.status_code == 201, created.text
    patched = await c.patch(
        created.headers["location"],
        content=b"by tus!",
        headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "0"},
    )
    assert patched.status_code == 204, patched.text

    finals = ["put.txt", "form/a.txt", "form/b.bin", "tus.bin"]
    assert len(commits) == len(finals)  # one commit per file, each recorded
    staging = folder.root / VFOLDER_STAGING_DIR
    for commit, final in zip(commits, finals, strict=True):
        assert commit.staging_dir == staging  # inside the vfolder, the quota boundary
        # Renamed, never copied: the destination is the staged inode itself.
        assert commit.committed.version.inode == commit.staged_inode
        assert (folder.root / final).stat().st_ino == commit.staged_inode
    assert list(staging.iterdir()) == []

    # The staging directory is the proxy's: not listed, not counted, not reachable.
    listed = await c.get(folder.url("list"), params={"recursive": "true"}, headers=ALICE)
    assert [e["path"] for e in listed.json()["items"]] == [*sorted(["form", *finals])]
    usage = (await c.get(folder.url("usage"), headers=SERVICE)).json()
    assert (usage["used_bytes"], usage["file_count"]) == (6 + 5 + 2 + 7, 5)
    for path in (VFOLDER_STAGING_DIR, f"{VFOLDER_STAGING_DIR}/x"):
        refused = await c.get(folder.url("stat"), params={"path": path}, headers=ALICE)
        assert refused.status_code == 400, refused.text
    assert (
        await c.put(folder.url(f"files/{VFOLDER_STAGING_DIR}/x"), content=b"x", headers=ALICE)
    ).status_code == 400


async def test_a_vfolder_quota_is_set_on_its_directory(folder: Folder) -> None:
    limited = await folder.client.put(
        f"/v1/quotas/vfolder/{folder.id}", json={"limit_bytes": 4096}, headers=SERVICE
    )
    assert limited.status_code == 200, limited.text
    limit = await anyio.to_thread.run_sync(os.getxattr, folder.root, dirquota.LIMIT_XATTR)
    assert limit == b"4096"
    volume = await folder.client.get("/v1/volumes/local", headers=SERVICE)
    assert volume.json()["capabilities"] == ["quota"]


async def test_a_scan_leaves_the_in_vfolder_staging_to_the_reservations(folder: Folder) -> None:
    """A tus upload half sent waits in the vfolder's hidden staging, held by its reservation:
    a scan (``POST …/reconcile``) counts neither it nor its bytes."""
    c = folder.client
    created = await c.post(
        folder.url("uploads"),
        headers={**ALICE, **TUS, "Upload-Length": "8192", "Upload-Metadata": meta(path="t.bin")},
    )
    assert created.status_code == 201, created.text
    patched = await c.patch(
        created.headers["location"],
        content=b"x" * 4096,
        headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "0"},
    )
    assert patched.status_code == 204, patched.text
    assert any(p.is_file() for p in (folder.root / ".sp-staging").rglob("*"))

    reconciled = await c.post(folder.url("reconcile"), headers=ALICE)
    assert reconciled.status_code == 200, reconciled.text
    assert reconciled.json()["corrections"] == []
    quota = (await c.get(f"/v1/quotas/vfolder/{folder.id}", headers=ALICE)).json()
    assert (quota["used_bytes"], quota["used_files"], quota["reserved_bytes"]) == (0, 0, 8192)
