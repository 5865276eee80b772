"""The CephFS driver over a dict-backed fake of its attribute calls (tests/drivers/cephfs/
fakes.py) on an ordinary filesystem: how quotas and usage are read and written, what an
unset, zero, negative or garbage value means, and that CephFS's ``.snap`` is nobody's file."""

from __future__ import annotations

import errno
import os
import time
import uuid
from pathlib import Path

import pytest

from drivers.base import capabilities_of
from drivers.cephfs import QUOTA_XATTR, CephQuota, CephSnapshots, OsXattrs, cephfs_driver
from drivers.driver import Driver
from drivers.errors import (
    BackendUnavailable,
    InvalidDriverOptions,
    InvalidSnapshotName,
    UnsafePath,
    VFolderDirectoryMissing,
)
from drivers.paths import parse_relative_path
from drivers.registry import build_driver
from drivers.staging import VFOLDER_STAGING_DIR
from tests.drivers.cephfs.fakes import FakeCephXattrs

MIB = 1024 * 1024


@pytest.fixture
def xattrs() -> FakeCephXattrs:
    return FakeCephXattrs()


@pytest.fixture
async def driver(tmp_path: Path, xattrs: FakeCephXattrs) -> Driver:
    built = cephfs_driver(tmp_path / "volume", xattrs=xattrs)
    await built.initialize()
    return built


def quota_of(driver: Driver) -> CephQuota:
    assert isinstance(driver.quota, CephQuota) and driver.usage is driver.quota
    return driver.quota


async def new_vfolder(driver: Driver) -> uuid.UUID:
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    return vfolder_id


def test_capabilities_and_registry(tmp_path: Path) -> None:
    built = build_driver("cephfs", root=tmp_path, options={"dir_mode": "0o750"})
    assert isinstance(built, Driver) and built.backend == "cephfs"
    assert capabilities_of(built) == ["fast-usage", "quota", "snapshot"]
    assert built.management is None and built.clone is None
    assert built.files.reserved_names == frozenset({".snap", VFOLDER_STAGING_DIR})
    with pytest.raises(InvalidDriverOptions, match="no option 'monitors'"):
        build_driver("cephfs", root=tmp_path, options={"monitors": "10.0.0.1"})


async def test_quota_set_get_unset(driver: Driver, xattrs: FakeCephXattrs) -> None:
    quota, vfolder_id = quota_of(driver), await new_vfolder(driver)
    path = driver.vfolder_path(vfolder_id)
    assert await quota.get_quota(vfolder_id) is None  # ENODATA: no quota
    await quota.set_quota(vfolder_id, limit_bytes=8 * MIB)
    assert xattrs.values[(path, QUOTA_XATTR)] == b"8388608"
    assert await quota.get_quota(vfolder_id) == 8 * MIB
    await quota.set_quota(vfolder_id, limit_bytes=None)  # written as b"0": removes it
    assert (path, QUOTA_XATTR) not in xattrs.values
    assert await quota.get_quota(vfolder_id) is None
    await quota.set_quota(vfolder_id, limit_bytes=None)  # nothing to remove: fine


async def test_a_zero_value_reads_as_unset_and_a_zero_limit_is_kept(
    driver: Driver, xattrs: FakeCephXattrs
) -> None:
    quota, vfolder_id = quota_of(driver), await new_vfolder(driver)
    path = driver.vfolder_path(vfolder_id)
    xattrs.values[(path, QUOTA_XATTR)] = b"0"  # what Ceph means by "no quota"
    assert await quota.get_quota(vfolder_id) is None
    # A limit of 0 must not become "no limit": it is kept as one byte, read back as 0.
    await quota.set_quota(vfolder_id, limit_bytes=0)
    assert xattrs.values[(path, QUOTA_XATTR)] == b"1"
    assert await quota.get_quota(vfolder_id) == 0


@pytest.mark.parametrize("raw", [b"-5", b"abc", b"", b"12abc", b"\xff\xfe", b"1.5"])
async def test_an_unreadable_quota_value_is_a_clear_backend_error(
    driver: Driver, xattrs: FakeCephXattrs, raw: bytes
) -> None:
    quota, vfolder_id = quota_of(driver), await new_vfolder(driver)
    xattrs.values[(driver.vfolder_path(vfolder_id), QUOTA_XATTR)] = raw
    with pytest.raises(BackendUnavailable, match=r"unreadable ceph\.quota\.max_bytes"):
        await quota.get_quota(vfolder_id)


async def test_a_value_with_a_trailing_nul_or_newline_is_read(
    driver: Driver, xattrs: FakeCephXattrs
) -> None:
    quota, vfolder_id = quota_of(driver), await new_vfolder(driver)
    xattrs.values[(driver.vfolder_path(vfolder_id), QUOTA_XATTR)] = b"4096\0"
    assert await quota.get_quota(vfolder_id) == 4096
    xattrs.values[(driver.vfolder_path(vfolder_id), QUOTA_XATTR)] = b"4096\n"
    assert await quota.get_quota(vfolder_id) == 4096


async def test_a_negative_limit_is_refused_before_any_call(
    driver: Driver, xattrs: FakeCephXattrs
) -> None:
    quota, vfolder_id = quota_of(driver), await new_vfolder(driver)
    xattrs.calls.clear()
    with pytest.raises(ValueError, match="negative"):
        await quota.set_quota(vfolder_id, limit_bytes=-1)
    assert xattrs.calls == []


async def test_usage_is_rbytes_and_the_file_count_rfiles(driver: Driver) -> None:
    quota, vfolder_id = quota_of(driver), await new_vfolder(driver)
    root = driver.vfolder_path(vfolder_id)
    (root / "a").mkdir()
    (root / "a" / "b").mkdir()
    (root / "a" / "b" / "f").write_bytes(b"x" * 5000)
    (root / "g").write_bytes(b"y" * 7000)
    assert await quota.usage_bytes(vfolder_id) == 12000
    # rentries would say 5 (the vfolder, a, a/b and the two files): only files count.
    assert await quota.file_count(vfolder_id) == 2


async def test_an_unreadable_usage_value_is_a_clear_backend_error(
    driver: Driver, xattrs: FakeCephXattrs
) -> None:
    quota, vfolder_id = quota_of(driver), await new_vfolder(driver)
    xattrs.values[(driver.vfolder_path(vfolder_id), "ceph.dir.rbytes")] = b"-1"
    with pytest.raises(BackendUnavailable, match=r"unreadable ceph\.dir\.rbytes"):
        await quota.usage_bytes(vfolder_id)


async def test_a_missing_vfolder_is_said_so(driver: Driver) -> None:
    quota, vfolder_id = quota_of(driver), uuid.uuid4()
    with pytest.raises(VFolderDirectoryMissing):
        await quota.get_quota(vfolder_id)
    with pytest.raises(VFolderDirectoryMissing):
        await quota.set_quota(vfolder_id, limit_bytes=MIB)
    with pytest.raises(VFolderDirectoryMissing):
        await quota.usage_bytes(vfolder_id)


async def test_a_volume_that_is_not_cephfs_is_a_backend_error(tmp_path: Path) -> None:
    """The real calls on this machine's own filesystem, which has no ``ceph.*`` names."""
    driver = cephfs_driver(tmp_path / "volume")
    await driver.initialize()
    vfolder_id = await new_vfolder(driver)
    quota = quota_of(driver)
    assert isinstance(quota.xattrs, OsXattrs)
    probe = driver.vfolder_path(vfolder_id)
    try:
        os.getxattr(probe, QUOTA_XATTR)
    except OSError as exc:
        if exc.errno == errno.ENODATA:
            pytest.skip("this filesystem stores ceph.* attributes")
    with pytest.raises(BackendUnavailable, match="cannot"):
        await quota.set_quota(vfolder_id, limit_bytes=MIB)
    with pytest.raises(BackendUnavailable, match="cannot"):
        await quota.usage_bytes(vfolder_id)


@pytest.mark.parametrize("path", [".snap", ".snap/s1", "a/.snap", "a/.snap/s1", "a/b/.snap/s1/f"])
async def test_snap_is_refused_at_every_depth(driver: Driver, path: str) -> None:
    vfolder_id = await new_vfolder(driver)
    (driver.vfolder_path(vfolder_id) / "a" / "b").mkdir(parents=True)
    (driver.vfolder_path(vfolder_id) / "z").write_bytes(b"z")
    rel = parse_relative_path(path)
    files = driver.files
    with pytest.raises(UnsafePath):
        await files.stat(vfolder_id, rel)
    with pytest.raises(UnsafePath):
        await files.mkdir(vfolder_id, rel, parents=True, exist_ok=True)
    with pytest.raises(UnsafePath):
        await files.delete(vfolder_id, rel, recursive=True)
    with pytest.raises(UnsafePath):
        await files.list_page(vfolder_id, rel, after=None, recursive=False, limit=10)
    with pytest.raises(UnsafePath):
        await files.move(vfolder_id, parse_relative_path("z"), rel, overwrite=False)


async def test_snap_is_never_listed(driver: Driver) -> None:
    """On CephFS ``.snap`` is not in a directory's entries anyway; where a filesystem did show
    one, the listing still leaves it out, at any depth, resumed or not."""
    vfolder_id = await new_vfolder(driver)
    root = driver.vfolder_path(vfolder_id)
    for where in (root, root / "a"):
        (where / ".snap" / "s1").mkdir(parents=True)
        (where / "z").write_bytes(b"z")
    files = driver.files
    listed, _ = await files.list_page(
        vfolder_id, parse_relative_path(""), after=None, recursive=True, limit=100
    )
    assert sorted(str(e.path) for e in listed) == ["a", "a/z", "z"]
    resumed, _ = await files.list_page(
        vfolder_id, parse_relative_path(""), after=("a", ".snap"), recursive=True, limit=100
    )
    assert ".snap" not in {part for e in resumed for part in e.path.parts}


async def test_snapshot_names_are_checked(driver: Driver) -> None:
    snapshots = driver.snapshots
    assert isinstance(snapshots, CephSnapshots)
    vfolder_id = await new_vfolder(driver)
    for bad in ("_s1", "../x", "a/b", "", ".hidden", "x" * 200):
        with pytest.raises(InvalidSnapshotName):
            await snapshots.create_snapshot(vfolder_id, name=bad)
        with pytest.raises(InvalidSnapshotName):
            snapshots.snapshot_files(vfolder_id, bad)


async def test_a_purge_drops_the_trashed_directorys_snapshots_first(driver: Driver) -> None:
    """CephFS refuses to remove a directory that has snapshots: they go first."""
    vfolder_id = await new_vfolder(driver)
    root = driver.vfolder_path(vfolder_id)
    (root / ".snap" / "s1").mkdir(parents=True)  # as mkdir .snap/s1 looks on a plain fs
    (root / "f").write_bytes(b"f")
    entry = await driver.move_to_trash(vfolder_id)
    await driver.purge(entry)
    assert await driver.list_trash() == []


def test_a_machine_that_cannot_run_ceph_skips_saying_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Never a failure, STORAGE_REQUIRE_SERVICES or not: CI must not fail for want of Ceph."""
    from tests.support import cephfs as support

    def cannot() -> None:
        raise support.CannotRun("needs root (the Ceph daemons and the ceph-fuse mount)")

    monkeypatch.setenv("STORAGE_REQUIRE_SERVICES", "1")
    monkeypatch.setattr(support, "_cluster", None)
    monkeypatch.setattr(support, "preflight", cannot)
    assert "SKIPPED" in support.cephfs_status() and "needs root" in support.cephfs_status()
    with pytest.raises(pytest.skip.Exception, match=r"no CephFS here \(needs root"):
        support.cephfs_scratch()
    assert support.session_status_line() == (
        "cephfs: tests SKIPPED, no CephFS here "
        "(needs root (the Ceph daemons and the ceph-fuse mount))"
    )


def test_setup_past_its_time_budget_gives_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.support import cephfs as support

    monkeypatch.setattr(support, "preflight", lambda: None)
    monkeypatch.setattr(support, "missing_commands", list)
    with pytest.raises(support.CannotRun, match="setup took over 180s"):
        support.up(tmp_path / "state", deadline=time.monotonic() - 1)
    assert not (tmp_path / "state").exists()  # what it made is gone
