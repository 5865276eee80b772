"""One contract suite, parametrized over every driver that can run on this machine."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from drivers.base import VolumeDriver, capabilities_of
from drivers.btrfs import BtrfsDriver
from drivers.errors import (
    BackendUnavailable,
    UnknownDriver,
    UnsafePath,
    VFolderDirectoryMissing,
)
from drivers.paths import ROOT, RelativePath
from drivers.posix import PosixDriver
from drivers.registry import DRIVERS, build_driver
from drivers.xfs import XfsDriver
from tests.drivers.test_xfs import FakeXfsTools
from tests.support.loop_mounts import btrfs_scratch

DriverFactory = Callable[[Path], VolumeDriver]

RUNNABLE: dict[str, tuple[DriverFactory, list[str]]] = {
    # name: (factory, the capabilities it must advertise)
    "posix": (lambda root: PosixDriver(root), []),
    # XFS cannot be mounted here: its tools are a double, the files are real.
    "xfs": (lambda root: XfsDriver(root, runner=FakeXfsTools()), ["fast-usage", "quota"]),
    # btrfs runs for real, on a loop-mounted image (skipped where that is not allowed).
    "btrfs": (
        lambda _root: BtrfsDriver(btrfs_scratch() / "volume"),
        ["fast-clone", "fast-usage", "quota", "snapshot"],
    ),
}


@pytest.fixture(params=sorted(RUNNABLE))
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> VolumeDriver:
    factory, _ = RUNNABLE[request.param]
    built = factory(tmp_path / "volume")
    await built.initialize()
    return built


def test_every_registered_driver_is_under_contract() -> None:
    assert set(DRIVERS) == set(RUNNABLE)


def test_unknown_driver_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnknownDriver, match="posix"):
        build_driver("nfs-magic", root=tmp_path, options={})


@pytest.mark.parametrize("name", sorted(RUNNABLE))
def test_capabilities_are_derived_from_methods(name: str, tmp_path: Path) -> None:
    factory, expected = RUNNABLE[name]
    assert capabilities_of(factory(tmp_path)) == expected


def test_capability_detection_sees_implemented_protocols(tmp_path: Path) -> None:
    class WithUsage(PosixDriver):
        async def usage_bytes(self, vfolder_id: uuid.UUID) -> int:
            return 0

    assert capabilities_of(WithUsage(tmp_path)) == ["fast-usage"]


async def test_sharded_layout_outside_private_areas(driver: VolumeDriver) -> None:
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    await driver.create_vfolder(vfolder_id)  # idempotent
    path = driver.vfolder_path(vfolder_id)
    h = vfolder_id.hex
    assert path == driver.root / h[:2] / h[2:4] / h
    assert path.is_dir() and await driver.vfolder_exists(vfolder_id)
    private = {p.name for p in driver.root.iterdir() if p.name.startswith(".")}
    # Drivers that keep snapshots keep them in a private area of their own.
    assert private - {".snapshots"} == {".staging", ".trash"}
    for area in (driver.root / ".staging", driver.root / ".trash"):
        assert not area.is_relative_to(path)
        assert area.stat().st_mode & 0o077 == 0


async def test_trash_restore_and_purge(driver: VolumeDriver) -> None:
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    (driver.vfolder_path(vfolder_id) / "data.txt").write_text("keep me")

    entry = await driver.move_to_trash(vfolder_id)
    assert entry.vfolder_id == vfolder_id
    assert not await driver.vfolder_exists(vfolder_id)
    assert await driver.list_trash() == [entry]

    await driver.restore_from_trash(entry)
    assert (driver.vfolder_path(vfolder_id) / "data.txt").read_text() == "keep me"
    assert await driver.list_trash() == []

    entry = await driver.move_to_trash(vfolder_id)
    await driver.purge(entry)
    await driver.purge(entry)  # purging twice (another node got there first) is fine
    assert await driver.list_trash() == []

    with pytest.raises(VFolderDirectoryMissing):
        await driver.move_to_trash(vfolder_id)


async def test_purge_never_follows_symlinks_out(driver: VolumeDriver, tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "file").write_text("must survive")
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    path = driver.vfolder_path(vfolder_id)
    (path / "link-to-dir").symlink_to(outside)
    (path / "link-to-file").symlink_to(outside / "file")
    (path / "nested" / "deeper").mkdir(parents=True)
    (path / "nested" / "deeper" / "link").symlink_to(outside)

    await driver.purge(await driver.move_to_trash(vfolder_id))
    assert (outside / "file").read_text() == "must survive"


async def test_capacity_and_writability(driver: VolumeDriver) -> None:
    capacity = await driver.capacity()
    assert capacity.total_bytes >= capacity.used_bytes >= 0
    assert capacity.total_bytes >= capacity.free_bytes > 0
    await driver.check_writable()
    assert list((driver.root / ".staging").iterdir()) == []


async def test_unwritable_volume_is_reported(driver: VolumeDriver) -> None:
    # A staging area that is not a directory defeats even root, unlike permission bits.
    staging = driver.root / ".staging"
    staging.rmdir()
    staging.write_text("not a directory")
    with pytest.raises(BackendUnavailable, match="not writable"):
        await driver.check_writable()


async def test_mount_info(driver: VolumeDriver) -> None:
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    info = await driver.mount_info(vfolder_id)
    assert info.host_path == driver.vfolder_path(vfolder_id)
    assert info.backend == driver.backend


async def test_posix_options(tmp_path: Path) -> None:
    driver = build_driver(
        "posix",
        root=tmp_path,
        options={"dir_mode": "0o770", "mount_options": ["rw", "noatime"]},
    )
    await driver.initialize()
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    assert driver.vfolder_path(vfolder_id).stat().st_mode & 0o777 == 0o770
    assert (await driver.mount_info(vfolder_id)).mount_options == ("rw", "noatime")


@pytest.mark.parametrize(
    "after",
    [
        ("..",),
        ("/etc",),
        ("a/b",),
        (".",),
        ("",),
        ("a\0b",),
        ("\ud800",),
        ("a", ".."),
        ("x" * 256,),
    ],
)
async def test_listing_walk_resumes_only_after_single_names(
    driver: VolumeDriver, after: tuple[str, ...]
) -> None:
    """Defence in depth under the sealed cursor: the walk opens each resume component
    relative to its parent, so a component that is not one name (``..``, an absolute path, a
    path) is refused before anything is opened, rather than walked out of the vfolder."""
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    (driver.vfolder_path(vfolder_id) / "a" / "b").mkdir(parents=True)
    for path in (ROOT, RelativePath(("a",))):
        with pytest.raises(UnsafePath):
            await driver.files.list_page(vfolder_id, path, after=after, recursive=True, limit=10)
    # The same resume point as names the walk produced works.
    entries, more = await driver.files.list_page(
        vfolder_id, ROOT, after=("a",), recursive=True, limit=10
    )
    assert [str(e.path) for e in entries] == ["a/b"] and not more
