"""The incremental usage walk, on a real directory tree: it agrees with a full walk, lists
again exactly the directories that changed, and forgets everything every ``full_every``
scans so that files grown in place are found."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from drivers.types import Usage
from drivers.usage_scan import (
    DirectoryFigure,
    DirectoryKey,
    ScanResult,
    UsageMemory,
    scan_usage,
)
from tests.support.polling import wait_until_blocking

SETTLE_NS = 50_000_000  # well above the kernel's timestamp granularity, far below a second


def tree(root: Path) -> None:
    (root / "a" / "deep").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "top.bin").write_bytes(b"x" * 10)
    (root / "a" / "one.bin").write_bytes(b"x" * 100)
    (root / "a" / "deep" / "two.bin").write_bytes(b"x" * 1000)
    (root / "b" / "link").symlink_to("../top.bin")


def scan(root: Path, previous: dict[DirectoryKey, DirectoryFigure] | None = None) -> ScanResult:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return scan_usage(fd, previous, settle_ns=SETTLE_NS)
    finally:
        os.close(fd)


def settled(root: Path) -> None:
    """Until every directory of the tree is older than the settle window (a poll, not a
    fixed sleep): only then may a scan remember it."""
    newest = max(Path(d).stat().st_ctime_ns for d, _dirs, _files in os.walk(root))
    wait_until_blocking(lambda: time.time_ns() - SETTLE_NS > newest, within_seconds=5)


def test_a_first_scan_counts_every_entry_below_the_root(tmp_path: Path) -> None:
    tree(tmp_path)
    result = scan(tmp_path)
    # 3 directories, 3 files, 1 symlink; bytes of regular files only.
    assert result.usage == Usage(1110, 7)
    assert (result.directories, result.reused) == (4, 0)


def test_unchanged_directories_are_not_listed_again(tmp_path: Path) -> None:
    tree(tmp_path)
    settled(tmp_path)
    first = scan(tmp_path)
    again = scan(tmp_path, first.figures)
    assert again.usage == first.usage
    assert again.reused == again.directories == 4


def test_a_change_is_found_in_the_directory_it_touched_and_only_there(tmp_path: Path) -> None:
    tree(tmp_path)
    settled(tmp_path)
    first = scan(tmp_path)
    (tmp_path / "a" / "deep" / "three.bin").write_bytes(b"x" * 5)  # as a container would
    (tmp_path / "top.bin").unlink()
    again = scan(tmp_path, first.figures)
    assert again.usage == Usage(1105, 7)
    assert again.usage == scan(tmp_path).usage  # what a full walk says
    assert again.reused == 2  # "a" and "b"; the root and "a/deep" were listed again


def test_a_directory_changed_within_the_settle_window_is_not_remembered(tmp_path: Path) -> None:
    tree(tmp_path)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        result = scan_usage(fd, settle_ns=3600 * 10**9)  # everything is "just changed"
    finally:
        os.close(fd)
    assert result.figures == {}


def _result(keys: list[int], *, reused: int) -> ScanResult:
    figure = DirectoryFigure((0, 0), Usage(), ())
    return ScanResult(Usage(), {(1, key): figure for key in keys}, reused=reused)


def test_memory_forgets_every_full_every_scans_and_when_asked() -> None:
    memory = UsageMemory(full_every=3)
    vfolder_id = uuid.uuid4()
    memory.remember(vfolder_id, _result([1], reused=0))  # a full scan
    assert set(memory.previous(vfolder_id)) == {(1, 1)}
    assert memory.previous(vfolder_id, full=True) == {}
    memory.remember(vfolder_id, _result([1], reused=1))  # the second
    assert set(memory.previous(vfolder_id)) == {(1, 1)}
    memory.remember(vfolder_id, _result([1], reused=1))  # the third: the next is full
    assert memory.previous(vfolder_id) == {}


def test_memory_drops_the_least_recently_scanned_vfolders_beyond_its_bound() -> None:
    memory = UsageMemory(max_directories=3)
    old, new = uuid.uuid4(), uuid.uuid4()
    memory.remember(old, _result([1, 2], reused=0))
    memory.remember(new, _result([1, 2], reused=0))
    assert memory.previous(old) == {}
    assert set(memory.previous(new)) == {(1, 1), (1, 2)}


def test_the_proxys_own_names_at_the_root_are_left_out(tmp_path: Path) -> None:
    """In-vfolder staging holds writes under way, counted in their reservations."""
    tree(tmp_path)
    (tmp_path / ".sp-staging").mkdir()
    (tmp_path / ".sp-staging" / "upload").write_bytes(b"x" * 4096)
    (tmp_path / "a" / ".sp-staging").mkdir()  # deeper down it is the user's own
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        result = scan_usage(fd, hidden=frozenset({".sp-staging"}))
    finally:
        os.close(fd)
    assert result.usage == Usage(1110, 8)
