"""The operator chooses what an upload does to a name already taken
(``STORAGE_UPLOAD_COLLISION``: fail, replace, rename); an upload's own ``overwrite`` wins."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import Settings
from app.db.engine import create_engine, create_session_factory
from app.uploads.expiry import UploadReaper
from app.uploads.models import UploadRow
from app.vfolders.models import VFolderRow
from app.volumes.registry import VolumeRegistry
from tests.files.conftest import VFolderHandle
from tests.support.app import make_settings
from tests.uploads.test_transfer_token_scope import mint
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


@pytest.mark.parametrize("settings", ["rename"], indirect=True)
async def test_a_transfer_token_follows_its_upload_to_the_name_it_got(
    vfolder: VFolderHandle,
) -> None:
    """A browser holds a token for ``inbox/a.bin`` only; the name is taken, so its upload
    lands as ``inbox/a (1).bin``. The token still reads the state of its own upload (a client
    that lost the last answer asks where it stands), and of nothing else there."""
    await vfolder.client.put(
        vfolder.url("files/inbox/a.bin"), params={"parents": "true"}, content=b"old", headers=ALICE
    )
    token = await mint(vfolder, operation="upload", path="inbox/a.bin")
    created = await create(vfolder, 3, **{**token, "Upload-Metadata": meta(path="inbox/a.bin")})
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    done = await vfolder.client.patch(
        url, headers={**token, **TUS, **OCTETS, "Upload-Offset": "0"}, content=b"new"
    )
    assert done.status_code == 204, done.text
    assert done.headers["upload-destination"] == "inbox/a%20%281%29.bin"

    head = await vfolder.client.head(url, headers={**token, **TUS})

    assert head.status_code == 200
    assert head.headers["upload-offset"] == "3"
    assert head.headers["upload-destination"] == "inbox/a%20%281%29.bin"
    other = await mint(vfolder, operation="upload", path="inbox/a (1).bin")
    assert (await vfolder.client.head(url, headers={**other, **TUS})).status_code in (403, 404)


async def _blocked_by(watcher: AsyncConnection, holder: AsyncConnection) -> int:
    """The backend (a request of the service) that waits for a lock ``holder`` holds."""
    holder_pid = (await holder.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    blocked = text("SELECT pid FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))")
    with anyio.fail_after(10):
        # Polled: only the database knows who waits for whom.
        while not (pids := (await watcher.execute(blocked, {"holder": holder_pid})).all()):  # noqa: ASYNC110
            await anyio.sleep(0.02)
    return int(pids[0][0])


# Only PostgreSQL lets a test hold one row while the service commits.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("settings", ["rename"], indirect=True)
async def test_a_renamed_upload_cut_off_before_its_commit_is_counted_as_itself(
    vfolder: VFolderHandle, settings: Settings, database_url: str
) -> None:
    """The operator's situation: the process dies once the upload's file is in place as
    ``taken (1).bin``, before its transaction commits. The repair at the next start counts
    the file this upload placed (5 bytes), not the older ``taken.bin`` (3 bytes)."""
    await vfolder.client.put(vfolder.url("files/taken.bin"), content=b"old", headers=ALICE)
    created = await create(vfolder, 5, **{"Upload-Metadata": meta(path="taken.bin")})
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    upload_id = uuid.UUID(url.rsplit("/", 1)[1])
    engine = create_engine(settings.effective_database_url)
    answers: list[object] = []

    async def last_patch() -> None:
        try:
            answers.append(
                await vfolder.client.patch(
                    url, headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "0"}, content=b"fresh"
                )
            )
        except Exception as error:  # its database connection died under it, as with its process
            answers.append(error)

    try:
        async with (
            engine.connect() as vfolder_lock,
            engine.connect() as upload_lock,
            engine.connect() as watcher,
        ):
            await watcher.execution_options(isolation_level="AUTOCOMMIT")
            # Writes may still reserve (KEY SHARE), but the completion waits for the vfolder.
            await vfolder_lock.execute(
                select(VFolderRow.id)
                .where(VFolderRow.id == uuid.UUID(vfolder.id))
                .with_for_update(read=True, key_share=True)
            )
            async with anyio.create_task_group() as group:
                group.start_soon(last_patch)
                await _blocked_by(watcher, vfolder_lock)
                # Whatever it recorded before its transaction is committed by now; what the
                # transaction records about the upload, after the placement, has to wait.
                await upload_lock.execute(
                    select(UploadRow.id).where(UploadRow.id == upload_id).with_for_update()
                )
                await vfolder_lock.rollback()
                completing = await _blocked_by(watcher, upload_lock)
                assert (vfolder.root / "taken (1).bin").read_bytes() == b"fresh"
                await watcher.execute(
                    text("SELECT pg_terminate_backend(:pid)"), {"pid": completing}
                )
                await upload_lock.rollback()
        assert not any(isinstance(a, httpx.Response) and a.is_success for a in answers), answers

        reaper = UploadReaper(
            sessions=create_session_factory(engine),
            volumes=VolumeRegistry.from_config(settings.volumes()),
        )
        assert await reaper.repair_interrupted_completions() == 1
    finally:
        await engine.dispose()
    assert await vfolder.usage() == (3 + 5, 2)
    head = await vfolder.client.head(url, headers={**ALICE, **TUS})
    assert head.headers["upload-offset"] == "5"
    assert head.headers["upload-destination"] == "taken%20%281%29.bin"
