"""The ``backendai`` layout: Backend.AI's ``<scope>/<hex[0:2]>/<hex[2:4]>/<hex[4:]>`` tree served
in place, by the POSIX driver and the XFS one (whose tools are a double here)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from drivers.base import VolumeDriver
from drivers.errors import BackendUnavailable, InvalidDriverOptions, VFolderDirectoryMissing
from drivers.layout import BackendAILayout, scope_dir_name
from drivers.paths import ROOT, parse_relative_path
from drivers.posix import posix_driver
from drivers.registry import build_driver
from drivers.types import CloneProgress, VFolderOwner
from drivers.xfs import xfs_driver
from tests.drivers.test_xfs import FakeXfsTools
from tests.support.app import bearer, client_with_volumes, user_token
from tests.support.tasks import finished_task

SCOPE = uuid.UUID("00000000-0000-0000-0000-000000000001")
ALICE = VFolderOwner("user", str(SCOPE))
# The folder the running reference created for qsid user:00000000-…-0001, as it lies on disk.
REFERENCE_ID = uuid.UUID("d5fae63d8d514c74b35765d8a3e82022")
OPTIONS = {"layout": "backendai"}

Factory = Callable[[Path], VolumeDriver]
FACTORIES: dict[str, Factory] = {
    "posix": lambda root: posix_driver(root, options=OPTIONS),
    "xfs": lambda root: xfs_driver(root, options=OPTIONS, runner=FakeXfsTools()),
}


@pytest.fixture(params=sorted(FACTORIES))
def factory(request: pytest.FixtureRequest) -> Factory:
    return FACTORIES[request.param]


@pytest.fixture
async def driver(factory: Factory, tmp_path: Path) -> VolumeDriver:
    built = factory(tmp_path / "vfroot")
    await built.initialize()
    return built


def bai_path(root: Path, scope: str, vfolder_id: uuid.UUID) -> Path:
    h = vfolder_id.hex
    return root / scope / h[:2] / h[2:4] / h[4:]


async def write(driver: VolumeDriver, vfolder_id: uuid.UUID, path: str, data: bytes) -> None:
    staged = await driver.files.create_staged(vfolder_id)
    await staged.write([data])
    await driver.files.commit_staged(
        staged, vfolder_id, parse_relative_path(path), replace=False, parents=True
    )


async def test_create_puts_the_vfolder_under_its_scope(driver: VolumeDriver) -> None:
    await driver.create_vfolder(REFERENCE_ID, owner=ALICE)
    await driver.create_vfolder(REFERENCE_ID, owner=ALICE)  # idempotent
    expected = driver.root / SCOPE.hex / "d5" / "fa" / "e63d8d514c74b35765d8a3e82022"
    assert driver.vfolder_path(REFERENCE_ID) == expected
    assert expected.is_dir() and await driver.vfolder_exists(REFERENCE_ID)
    assert (await driver.mount_info(REFERENCE_ID)).host_path == expected
    # The proxy's own areas stay at the volume root, never taken for a quota scope.
    assert {p.name for p in driver.root.iterdir()} == {".staging", ".trash", SCOPE.hex}
    assert list(BackendAILayout(driver.root).vfolder_ids()) == [REFERENCE_ID]


async def test_create_without_owner_is_refused(driver: VolumeDriver) -> None:
    with pytest.raises(BackendUnavailable, match="owner"):
        await driver.create_vfolder(uuid.uuid4())


async def test_unknown_vfolder_is_missing(driver: VolumeDriver) -> None:
    unknown = uuid.uuid4()
    assert not await driver.vfolder_exists(unknown)
    with pytest.raises(VFolderDirectoryMissing):
        await driver.files.usage(unknown)
    with pytest.raises(VFolderDirectoryMissing):
        await driver.move_to_trash(unknown)
    assert {p.name for p in driver.root.iterdir()} == {".staging", ".trash"}


def test_owner_directories_are_safe_and_distinct() -> None:
    assert scope_dir_name(ALICE) == SCOPE.hex
    assert scope_dir_name(VFolderOwner("group", str(SCOPE))) == SCOPE.hex
    lettered = uuid.UUID("d5fae63d-8d51-4c74-b357-65d8a3e82022")
    # Only the canonical spelling of a UUID is its hex: two spellings are two owner ids here.
    hostile = ["../etc", ".trash", "a/b", "", "A", "a", str(lettered).upper(), lettered.hex]
    hostile += ["x" * 255, "y" * 255]
    names = [scope_dir_name(VFolderOwner(kind, o)) for kind in ("user", "group") for o in hostile]
    assert len(set(names)) == len(names)
    for name in names:
        assert "/" not in name and not name.startswith(".") and 0 < len(name) <= 200


async def test_non_uuid_owner_gets_its_own_scope(driver: VolumeDriver) -> None:
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id, owner=VFolderOwner("user", "alice/../x"))
    path = driver.vfolder_path(vfolder_id)
    assert path.parent.parent.parent.parent == driver.root
    assert path.relative_to(driver.root).parts[0] == "user-alice%2F..%2Fx"


async def test_trash_restore_and_purge(driver: VolumeDriver) -> None:
    await driver.create_vfolder(REFERENCE_ID, owner=ALICE)
    place = driver.vfolder_path(REFERENCE_ID)
    (place / "data.txt").write_text("keep me")

    entry = await driver.move_to_trash(REFERENCE_ID)
    assert entry.vfolder_id == REFERENCE_ID and not entry.holds_files
    assert not await driver.vfolder_exists(REFERENCE_ID)
    assert await driver.list_trash() == [entry]
    assert list(BackendAILayout(driver.root).vfolder_ids()) == []

    # Restored by a node that never saw the vfolder: the trash name says where it goes.
    other = posix_driver(driver.root, options=OPTIONS)
    await other.restore_from_trash(entry)
    assert (place / "data.txt").read_text() == "keep me"
    assert await driver.vfolder_exists(REFERENCE_ID)

    entry = await driver.move_to_trash(REFERENCE_ID)
    await driver.purge(entry)
    assert await driver.list_trash() == []
    with pytest.raises(VFolderDirectoryMissing):
        await driver.move_to_trash(REFERENCE_ID)


async def test_file_operations(driver: VolumeDriver) -> None:
    await driver.create_vfolder(REFERENCE_ID, owner=ALICE)
    await write(driver, REFERENCE_ID, "docs/a.txt", b"hello")
    await driver.files.mkdir(
        REFERENCE_ID, parse_relative_path("empty/inner"), parents=True, exist_ok=False
    )
    source, target = parse_relative_path("docs/a.txt"), parse_relative_path("b.txt")
    await driver.files.move(REFERENCE_ID, source, target, overwrite=False)
    assert (driver.vfolder_path(REFERENCE_ID) / "b.txt").read_bytes() == b"hello"
    entries, more = await driver.files.list_page(
        REFERENCE_ID, ROOT, after=None, recursive=False, limit=10
    )
    assert sorted(e.name for e in entries) == ["b.txt", "docs", "empty"] and not more
    await driver.files.delete(REFERENCE_ID, parse_relative_path("empty"), recursive=True)
    usage = await driver.files.usage(REFERENCE_ID)
    assert (usage.bytes, usage.entries) == (5, 2)
    # A directory deleted from inside went through the trash and is gone from it.
    assert await driver.list_trash() == []


async def test_clone_lands_under_the_target_owner(driver: VolumeDriver) -> None:
    """As app/vfolders/clone.py does it: the target placed by a create, then the copy."""
    bob = VFolderOwner("group", str(uuid.uuid4()))
    target = uuid.uuid4()
    await driver.create_vfolder(REFERENCE_ID, owner=ALICE)
    await write(driver, REFERENCE_ID, "x/y.bin", b"12345678")
    await driver.create_vfolder(target, owner=bob)
    await driver.files.receive_copy(driver.vfolder_path(REFERENCE_ID), target, CloneProgress())
    assert driver.vfolder_path(target) == bai_path(driver.root, uuid.UUID(bob.id).hex, target)
    assert (driver.vfolder_path(target) / "x" / "y.bin").read_bytes() == b"12345678"
    assert (await driver.files.usage(target)).bytes == 8


async def test_a_fresh_driver_finds_every_vfolder(factory: Factory, tmp_path: Path) -> None:
    root = tmp_path / "vfroot"
    first = factory(root)
    await first.initialize()
    ids = sorted(uuid.uuid4() for _ in range(3))
    for vfolder_id in ids:
        await first.create_vfolder(vfolder_id, owner=VFolderOwner("user", str(uuid.uuid4())))

    second = factory(root)
    await second.initialize()
    for vfolder_id in ids:
        assert second.vfolder_path(vfolder_id) == first.vfolder_path(vfolder_id)
    assert sorted(BackendAILayout(root).vfolder_ids()) == ids


async def test_a_vfolder_made_by_another_node_is_found_on_a_miss(driver: VolumeDriver) -> None:
    elsewhere = uuid.uuid4()
    scope = uuid.uuid4().hex
    path = bai_path(driver.root, scope, elsewhere)
    path.mkdir(parents=True)
    (path / "f").write_bytes(b"abc")
    assert await driver.vfolder_exists(elsewhere)
    assert driver.vfolder_path(elsewhere) == path
    assert (await driver.files.usage(elsewhere)).bytes == 3


def test_layout_option_is_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidDriverOptions, match="layout"):
        build_driver("posix", root=tmp_path, options={"layout": "flat"})
    sharded = build_driver("posix", root=tmp_path, options={"layout": "sharded"})
    h = REFERENCE_ID.hex
    assert sharded.vfolder_path(REFERENCE_ID) == tmp_path.resolve() / h[:2] / h[2:4] / h


REFERENCE_VFROOT = Path("/root/.cache/storage-proxy-reference/backendai/vfroot")


@pytest.mark.skipif(not REFERENCE_VFROOT.is_dir(), reason="no Backend.AI reference here")
def test_reads_the_reference_tree() -> None:
    """The running reference's own volume, read only: every folder found where it is."""
    layout = BackendAILayout(REFERENCE_VFROOT)
    for vfolder_id in layout.vfolder_ids():
        path = layout.vfolder_path(vfolder_id)
        assert path.is_dir()
        assert path.relative_to(REFERENCE_VFROOT).parts[1:] == (
            vfolder_id.hex[:2],
            vfolder_id.hex[2:4],
            vfolder_id.hex[4:],
        )


async def test_the_api_over_backendai_volumes(tmp_path: Path) -> None:
    """Through /v1: a create lands under its owner's scope, a clone under the clone's owner on
    the same volume and on another, a delete leaves nothing under the scope."""
    volumes = "".join(
        f'[volumes.{name}]\npath = "{tmp_path / name}"\noptions = {{ layout = "backendai" }}\n'
        for name in ("local", "other")
    )
    owner = str(uuid.uuid4())
    alice = bearer(user_token(owner))
    async with client_with_volumes(tmp_path, volumes) as (client, _settings):
        created = await client.post(
            "/v1/vfolders", json={"name": "data", "volume": "local"}, headers=alice
        )
        assert created.status_code == 201, created.text
        source = uuid.UUID(created.json()["id"])
        put = await client.put(
            f"/v1/vfolders/{source}/files/d/x.bin?parents=true", content=b"x" * 99, headers=alice
        )
        assert put.status_code == 201, put.text
        scope = uuid.UUID(owner).hex
        assert (bai_path(tmp_path / "local", scope, source) / "d" / "x.bin").stat().st_size == 99

        for volume in ("local", "other"):
            started = await client.post(
                f"/v1/vfolders/{source}/clone",
                json={"name": f"copy-{volume}", "volume": volume},
                headers=alice,
            )
            assert started.status_code == 202, started.text
            task = await finished_task(client, started.headers["location"], alice)
            assert task["state"] == "succeeded", task
            target = uuid.UUID(started.json()["vfolder"]["id"])
            copied = bai_path(tmp_path / volume, scope, target) / "d" / "x.bin"
            assert copied.read_bytes() == b"x" * 99

        deleted = await client.delete(f"/v1/vfolders/{source}", headers=alice)
        assert deleted.status_code == 204
        assert not bai_path(tmp_path / "local", scope, source).exists()
        got = await client.get(f"/v1/vfolders/{source}/files/d/x.bin", headers=alice)
        assert got.status_code in (404, 410)
