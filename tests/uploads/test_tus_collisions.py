"""The operator chooses what an upload does to a name already taken
(``STORAGE_UPLOAD_COLLISION``: fail, replace, rename); an upload's own ``overwrite`` wins."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import anyio
import pytest

from app.config import Settings
from drivers.paths import RelativePath
from drivers.posix import PosixDriver
from tests.files.conftest import VFolderHandle
from tests.support.app import make_settings
from tests.uploads.test_tus_protocol import ALICE, OCTETS, TUS, create, meta


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Settings:
    """The deployment's policy, from ``@pytest.mark.parametrize("settings", [...])``."""
    return make_settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        upload_collision=getattr(request, "param", "fail"),
    )


async def _upload(vfolder: VFolderHandle, data: bytes, **metadata: str) -> tuple[int, str]:
    """Creates and finishes an upload; its status and where it says the file landed."""
    created = await create(vfolder, len(data), **{"Upload-Metadata": meta(**metadata)})
    if created.status_code != 201:
        return created.status_code, ""
    done = await vfolder.client.patch(
        created.headers["location"],
        headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "0"},
        content=data,
    )
    if done.status_code != 204:
        return done.status_code, ""
    head = await vfolder.client.head(created.headers["location"], headers={**ALICE, **TUS})
    assert head.headers["upload-destination"] == done.headers["upload-destination"]
    return done.status_code, done.headers["upload-destination"]


async def test_by_default_a_taken_name_is_refused(vfolder: VFolderHandle) -> None:
    await vfolder.client.put(vfolder.url("files/taken.bin"), content=b"old", headers=ALICE)
    assert await _upload(vfolder, b"new", path="taken.bin") == (409, "")
    assert (vfolder.root / "taken.bin").read_bytes() == b"old"


@pytest.mark.parametrize("settings", ["replace"], indirect=True)
async def test_replace_policy_replaces(vfolder: VFolderHandle) -> None:
    await vfolder.client.put(vfolder.url("files/taken.bin"), content=b"old", headers=ALICE)
    assert await _upload(vfolder, b"newer", path="taken.bin") == (204, "taken.bin")
    assert (vfolder.root / "taken.bin").read_bytes() == b"newer"
    assert await vfolder.usage() == (5, 1)
    # The upload's own choice wins over the deployment's.
    assert await _upload(vfolder, b"x", path="taken.bin", overwrite="0") == (409, "")


@pytest.mark.parametrize("settings", ["rename"], indirect=True)
async def test_rename_policy_numbers_the_new_file(vfolder: VFolderHandle) -> None:
    put = await vfolder.client.put(
        vfolder.url("files/dir/taken.tar.gz"),
        params={"parents": "true"},
        content=b"old",
        headers=ALICE,
    )
    assert put.status_code == 201, put.text
    first = await _upload(vfolder, b"one", path="dir/taken.tar.gz")
    second = await _upload(vfolder, b"two!", path="dir/taken.tar.gz")
    assert (first, second) == (
        (204, "dir/taken.tar%20%281%29.gz"),
        (204, "dir/taken.tar%20%282%29.gz"),
    )
    names = {p.name: p.read_bytes() for p in (vfolder.root / "dir").iterdir()}
    assert names == {
        "taken.tar.gz": b"old",
        "taken.tar (1).gz": b"one",
        "taken.tar (2).gz": b"two!",
    }
    assert await vfolder.usage() == (10, 4)
    listed = (await vfolder.client.get(vfolder.url("uploads"), headers=ALICE)).json()
    assert listed["items"] == []
    # A name without an extension, and one taken only after the upload was created.
    created = await create(vfolder, 2, **{"Upload-Metadata": meta(path=".profile")})
    assert created.status_code == 201 and created.headers["upload-destination"] == ".profile"
    await vfolder.client.put(vfolder.url("files/.profile"), content=b"first", headers=ALICE)
    done = await vfolder.client.patch(
        created.headers["location"],
        headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "0"},
        content=b"hi",
    )
    assert done.status_code == 204 and done.headers["upload-destination"] == ".profile%20%281%29"
    # The upload's own choice wins over the deployment's.
    assert await _upload(vfolder, b"new", path="dir/taken.tar.gz", overwrite="1") == (
        204,
        "dir/taken.tar.gz",
    )
    assert (vfolder.root / "dir" / "taken.tar.gz").read_bytes() == b"new"


@pytest.mark.parametrize("settings", ["rename"], indirect=True)
async def test_uploads_racing_for_one_name_all_land(vfolder: VFolderHandle) -> None:
    landed: list[tuple[int, str]] = []

    async def upload(n: int) -> None:
        landed.append(await _upload(vfolder, bytes([n]) * (n + 1), path="race.bin"))

    async with anyio.create_task_group() as tg:
        for n in range(6):
            tg.start_soon(upload, n)
    assert sorted(landed) == sorted(
        [(204, "race.bin")] + [(204, f"race%20%28{n}%29.bin") for n in range(1, 6)]
    )
    sizes = sorted(p.stat().st_size for p in vfolder.root.iterdir())
    assert sizes == [1, 2, 3, 4, 5, 6]  # every upload whole, none overwrote another
    assert await vfolder.usage() == (21, 6)


def test_the_driver_places_racing_files_under_distinct_names(tmp_path: Path) -> None:
    """No check-then-act: threads committing to one name at once each get their own."""
    driver = PosixDriver(tmp_path / "volume")
    vfolder_id = uuid.uuid4()
    anyio.run(driver.initialize)
    anyio.run(driver.create_vfolder, vfolder_id)
    files = driver.files.sync
    start = threading.Barrier(8)
    placed: list[str] = []

    def commit(n: int) -> None:
        staged = files.create_staged()
        staged.write_chunks([str(n).encode()])
        start.wait()
        _, path = files.commit_staged_renaming(
            staged, vfolder_id, RelativePath(("a", "same.txt")), parents=True
        )
        placed.append(path.name)

    threads = [threading.Thread(target=commit, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(placed) == sorted(["same.txt"] + [f"same ({n}).txt" for n in range(1, 8)])
    root = driver.vfolder_path(vfolder_id) / "a"
    assert sorted(p.read_text() for p in root.iterdir()) == [str(n) for n in range(8)]
