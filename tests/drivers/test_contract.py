"""One contract suite, parametrized over every driver that can run on this machine, the
throwaway example backend of tests/drivers/dirquota included."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from drivers.base import VolumeDriver, capabilities_of
from drivers.btrfs import btrfs_driver
from drivers.cephfs import cephfs_driver
from drivers.ddn import ddn_driver
from drivers.errors import (
    BackendUnavailable,
    UnknownDriver,
    UnsafePath,
    VFolderDirectoryMissing,
)
from drivers.fsops import staged_file
from drivers.nfs import nfs_driver
from drivers.paths import ROOT, RelativePath, parse_relative_path
from drivers.posix import posix_driver
from drivers.registry import ENTRY_POINT_GROUP, backends, build_driver, forget, register, unregister
from drivers.types import CloneProgress, Usage
from drivers.xfs import xfs_driver
from tests.drivers import dirquota
from tests.drivers.dellemc.fake import fake_onefs_driver
from tests.drivers.netapp import fake_ontap
from tests.drivers.purestorage.fake import fake_driver as flashblade_driver
from tests.drivers.test_ddn import FakeLfs
from tests.drivers.test_xfs import FakeXfsTools
from tests.drivers.vast import fake_driver as fake_vast_driver
from tests.drivers.weka import contract_driver as weka_contract_driver
from tests.support.cephfs import cephfs_scratch
from tests.support.loop_mounts import btrfs_scratch

DriverFactory = Callable[[Path], VolumeDriver]


@dataclass(frozen=True)
class Entry:
    factory: DriverFactory
    capabilities: list[str]  # what it must advertise
    # Its uploads commit by renaming the staged file (the same inode), never by a copy.
    renames: bool = True
    # Where a vfolder lives under the root, when not the sharded <hex[0:2]>/<hex[2:4]>/<hex>
    # (ONTAP makes qtrees only at a volume's root: <hex>).
    flat: bool = False


RUNNABLE: dict[str, Entry] = {
    "posix": Entry(lambda root: posix_driver(root), []),
    # XFS cannot be mounted here: its tools are a double, the files are real.
    "xfs": Entry(lambda root: xfs_driver(root, runner=FakeXfsTools()), ["fast-usage", "quota"]),
    # btrfs runs for real, on a loop-mounted image (skipped where that is not allowed). Its
    # staging is outside every subvolume: a commit shares the extents (reflink) instead.
    "btrfs": Entry(
        lambda _root: btrfs_driver(btrfs_scratch() / "volume"),
        ["fast-clone", "fast-usage", "quota", "snapshot"],
        renames=False,
    ),
    # FlashBlade: its REST API is a respx fake (tests/drivers/purestorage), the files real. No
    # directory quota and no per-directory usage exist on the array: snapshots only.
    "purestorage": Entry(lambda root: flashblade_driver(root)[0], ["snapshot"]),
    # No Lustre here: lfs is a double (tests/drivers/test_ddn.py), the files are real.
    "ddn": Entry(lambda root: ddn_driver(root, runner=FakeLfs()), ["fast-usage", "quota"]),
    # No NFS client in this kernel: the export is a local directory.
    "nfs": Entry(
        lambda root: nfs_driver(root, options={"server": "nfs.example", "export": "/export"}),
        [],
    ),
    # VAST against a fake VMS (tests/drivers/vast), its mount a real directory.
    "vast": Entry(lambda root: fake_vast_driver(root)[0], ["fast-usage", "quota", "snapshot"]),
    # OneFS: its Platform API is a stateful respx fake, the mount a local directory.
    "dellemc": Entry(fake_onefs_driver, ["fast-usage", "quota", "snapshot"]),
    # CephFS runs for real, on a single-node cluster the session starts (skipped where the
    # machine cannot run one): the vfolder directory is the quota realm, staging inside it.
    "cephfs": Entry(
        lambda _root: cephfs_driver(cephfs_scratch() / "volume"),
        ["fast-usage", "quota", "snapshot"],
    ),
    # NetApp ONTAP: a fake of its REST API serving the real directory (tests/drivers/netapp).
    "netapp": Entry(
        lambda root: fake_ontap.fake_driver(root)[0],
        ["fast-usage", "quota", "snapshot"],
        flat=True,
    ),
    # The example of CONTRIBUTING.md, defined in the test package.
    "dirquota": Entry(lambda root: dirquota.dirquota_driver(root), ["quota"]),
    # WekaFS: real files on the mount, the management API a stateful respx fake.
    "weka": Entry(weka_contract_driver, ["fast-usage", "quota", "snapshot"]),
}


@pytest.fixture(autouse=True)
def example_backend_registered() -> Iterator[None]:
    """The example backend's registry line, for the length of a test."""
    register(dirquota.BACKEND)
    yield
    unregister(dirquota.BACKEND.name)


@pytest.fixture(params=sorted(RUNNABLE))
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> VolumeDriver:
    built = RUNNABLE[request.param].factory(tmp_path / "volume")
    await built.initialize()
    return built


def test_every_registered_driver_is_under_contract() -> None:
    assert set(backends()) == set(RUNNABLE)


def test_unknown_driver_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnknownDriver, match="posix"):
        build_driver("nfs-magic", root=tmp_path, options={})


def test_an_installed_package_adds_a_backend_through_its_entry_point(tmp_path: Path) -> None:
    """What ``pip install`` of a separate package leaves behind: a dist-info whose
    entry_points.txt names a Backend in the group. Nothing else registers it."""
    unregister(dirquota.BACKEND.name)
    dist = tmp_path / "storage_proxy_dirquota-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: storage-proxy-dirquota\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ndirquota = tests.drivers.dirquota:BACKEND\n"
    )
    sys.path.append(str(tmp_path))
    try:
        forget()
        assert backends()["dirquota"] is dirquota.BACKEND
        built = build_driver("dirquota", root=tmp_path / "volume", options={})
        assert capabilities_of(built) == ["quota"]
    finally:
        sys.path.remove(str(tmp_path))
        forget()
    assert "dirquota" not in backends()


@pytest.mark.parametrize("name", sorted(RUNNABLE))
def test_capabilities_are_derived_from_parts(name: str, tmp_path: Path) -> None:
    entry = RUNNABLE[name]
    assert capabilities_of(entry.factory(tmp_path)) == entry.capabilities


def test_capability_detection_sees_implemented_protocols(tmp_path: Path) -> None:
    class ZeroUsage:
        async def usage_bytes(self, vfolder_id: uuid.UUID) -> int:
            return 0

    class NotAStrategy:
        pass

    driver = posix_driver(tmp_path)
    driver.usage = ZeroUsage()
    assert capabilities_of(driver) == ["fast-usage"]
    driver.quota = NotAStrategy()  # type: ignore[assignment]
    assert capabilities_of(driver) == ["fast-usage"]


async def test_sharded_layout_outside_private_areas(driver: VolumeDriver) -> None:
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    await driver.create_vfolder(vfolder_id)  # idempotent
    path = driver.vfolder_path(vfolder_id)
    h = vfolder_id.hex
    flat = RUNNABLE[driver.backend].flat
    assert path == (driver.root / h if flat else driver.root / h[:2] / h[2:4] / h)
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


def entry_of(driver: VolumeDriver) -> Entry:
    return RUNNABLE[driver.backend]


async def test_an_upload_commits_inside_the_vfolder(driver: VolumeDriver) -> None:
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    staged = await driver.files.create_staged(vfolder_id)
    await staged.write([b"payload"])
    inode = await anyio.to_thread.run_sync(lambda: os.fstat(staged_file(staged).fd).st_ino)
    committed = await driver.files.commit_staged(
        staged, vfolder_id, parse_relative_path("in/f.bin"), replace=False, parents=True
    )
    final = driver.vfolder_path(vfolder_id) / "in" / "f.bin"
    assert final.read_bytes() == b"payload"
    assert committed.added == Usage(7, 2) and committed.version.inode == final.stat().st_ino
    if entry_of(driver).renames:
        assert final.stat().st_ino == inode  # the staged file itself, renamed
    for name in driver.files.reserved_names:
        assert list((driver.vfolder_path(vfolder_id) / name).iterdir()) == []
    assert await driver.files.usage(vfolder_id) == Usage(7, 2)


async def test_staging_is_never_a_users_file(driver: VolumeDriver) -> None:
    """An upload in flight is not listed, measured or reachable by path, wherever the
    driver stages it."""
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    staged = await driver.files.create_staged(vfolder_id)
    try:
        await staged.write([b"in flight"])
        staged_name = staged_file(staged).name
        entries, more = await driver.files.list_page(
            vfolder_id, ROOT, after=None, recursive=True, limit=10
        )
        assert entries == [] and not more
        assert await driver.files.usage(vfolder_id) == Usage()
        reserved_names = driver.files.reserved_names
        if reserved_names:  # staged in the vfolder: under one of them (others: CephFS's .snap)
            root = driver.vfolder_path(vfolder_id)
            assert any((root / name / staged_name).is_file() for name in reserved_names)
        for name in reserved_names:
            reserved = RelativePath((name,))
            with pytest.raises(UnsafePath):
                await driver.files.stat(vfolder_id, reserved)
            with pytest.raises(UnsafePath):
                await driver.files.stat(vfolder_id, reserved.child(staged_name))
            with pytest.raises(UnsafePath):
                await driver.files.mkdir(vfolder_id, reserved, parents=False, exist_ok=True)
            with pytest.raises(UnsafePath):
                await driver.files.list_page(
                    vfolder_id, reserved, after=None, recursive=False, limit=10
                )
            # A resume cursor naming it does not walk into it either.
            entries, _ = await driver.files.list_page(
                vfolder_id, ROOT, after=(name, staged_name), recursive=True, limit=10
            )
            assert entries == []
    finally:
        await staged.discard()


async def test_abandoned_staging_files_are_found_and_removed(driver: VolumeDriver) -> None:
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    live = await driver.files.create_staged(vfolder_id)
    dead = await driver.files.create_staged(vfolder_id)
    await dead.close()  # its writer is gone: the lock with it
    try:
        keys = await driver.files.staging_candidates(older_than=time.time() + 60)
        assert sorted(key.rpartition("/")[2] for key in keys) == sorted(
            staged_file(s).name for s in (live, dead)
        )
        removed = [
            key
            for key in keys
            if await driver.files.remove_abandoned_staged(key, older_than=time.time() + 60)
        ]
        assert [key.rpartition("/")[2] for key in removed] == [staged_file(dead).name]
    finally:
        await live.discard()


async def test_a_copied_vfolder_leaves_the_sources_staging_behind(driver: VolumeDriver) -> None:
    source, target = uuid.uuid4(), uuid.uuid4()
    await driver.create_vfolder(source)
    (driver.vfolder_path(source) / "kept.txt").write_text("data")
    staged = await driver.files.create_staged(source)
    try:
        await driver.files.receive_copy(
            driver.vfolder_path(source),
            target,
            CloneProgress(),
            skip=driver.files.reserved_names,
        )
    finally:
        await staged.discard()
    assert sorted(p.name for p in driver.vfolder_path(target).iterdir()) == ["kept.txt"]
