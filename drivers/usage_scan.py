"""Walking a vfolder for its usage, incrementally: a directory whose (mtime, ctime) did not
change since the last scan has the same entries, so the figure of the entries directly in it
(and the names of its subdirectories) is taken from that scan instead of one ``lstat`` per
entry. Its subdirectories are still visited: each has its own timestamps.

What this cannot see: a file that grows or shrinks in place (an append, a truncate) changes
its own timestamps, not its directory's. ``UsageMemory`` therefore forgets a vfolder's figures
every ``full_every`` scans, so such a change is found within that many scans.

A directory changed within ``settle_ns`` of the scan's start is not remembered: a
filesystem with coarse timestamps (a second, on some NFS servers) could give a change made
just after the listing the same timestamps as the listing saw (the "racy" case of git's
index)."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from drivers.paths import O_DIR
from drivers.types import Usage

DirectoryKey = tuple[int, int]  # (st_dev, st_ino)
SETTLE_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class DirectoryFigure:
    """The entries directly in one directory, as of its ``version`` (mtime_ns, ctime_ns)."""

    version: tuple[int, int]
    usage: Usage  # regular files' bytes; one entry per file, directory, symlink…
    subdirectories: tuple[str, ...]


@dataclass(slots=True)
class ScanResult:
    usage: Usage
    figures: dict[DirectoryKey, DirectoryFigure]  # what the next scan may reuse
    directories: int = 0
    reused: int = 0  # directories whose entries were not listed again


def scan_usage(
    root_fd: int,
    previous: Mapping[DirectoryKey, DirectoryFigure] | None = None,
    *,
    settle_ns: int = SETTLE_NS,
    hidden: frozenset[str] = frozenset(),
) -> ScanResult:
    """The usage of everything below ``root_fd`` (not the root itself, nor the ``hidden``
    names at the root), reusing the figures of ``previous`` for unchanged directories.
    Depth-first, one open fd per level; symlinks are counted, never followed."""
    known = previous or {}
    result = ScanResult(Usage(), {})
    settled_before = time.time_ns() - settle_ns
    stack: list[tuple[int, Iterator[str]]] = []
    fd = os.dup(root_fd)
    skip = hidden
    try:
        while fd >= 0:
            figure = _figure(fd, known, result, settled_before, skip)
            skip = frozenset()  # only at the root
            result.usage += figure.usage
            stack.append((fd, iter(figure.subdirectories)))
            fd = -1
            while stack and fd < 0:
                parent, names = stack[-1]
                name = next(names, None)
                if name is None:
                    os.close(parent)
                    stack.pop()
                    continue
                try:
                    fd = os.open(name, O_DIR, dir_fd=parent)
                except OSError:
                    continue  # removed or replaced since it was listed
    finally:
        if fd >= 0:
            os.close(fd)
        for parent, _names in stack:
            os.close(parent)
    return result


def _figure(
    fd: int,
    known: Mapping[DirectoryKey, DirectoryFigure],
    result: ScanResult,
    settled_before: int,
    skip: frozenset[str],
) -> DirectoryFigure:
    # The timestamps are read before the listing: a change during it moves them past what
    # is remembered, so the next scan lists the directory again.
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino)
    version = (st.st_mtime_ns, st.st_ctime_ns)
    result.directories += 1
    cached = known.get(key)
    if cached is not None and cached.version == version:
        result.reused += 1
        result.figures[key] = cached
        return cached
    usage = Usage()
    subdirectories = []
    with os.scandir(fd) as it:
        names = [entry.name for entry in it if entry.name not in skip]
    for name in names:
        try:
            child = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        usage += Usage(child.st_size if stat.S_ISREG(child.st_mode) else 0, 1)
        if stat.S_ISDIR(child.st_mode):
            subdirectories.append(name)
    figure = DirectoryFigure(version, usage, tuple(subdirectories))
    if max(version) < settled_before:
        result.figures[key] = figure
    return figure


@dataclass(slots=True)
class _Remembered:
    figures: dict[DirectoryKey, DirectoryFigure] = field(default_factory=dict)
    scans: int = 0


class UsageMemory:
    """This process's figures of recently scanned vfolders, least recently scanned dropped
    first once they hold more than ``max_directories`` directories in all. Safe to share
    between threads: a scan reads a snapshot and stores a whole new one."""

    def __init__(self, *, max_directories: int = 200_000, full_every: int = 12) -> None:
        self._max_directories = max_directories
        self._full_every = full_every
        self._vfolders: OrderedDict[UUID, _Remembered] = OrderedDict()
        self._lock = threading.Lock()

    def previous(
        self, vfolder_id: UUID, *, full: bool = False
    ) -> dict[DirectoryKey, DirectoryFigure]:
        """What a scan of ``vfolder_id`` may reuse: nothing when ``full`` is asked for, or
        when this is the vfolder's ``full_every``-th scan."""
        with self._lock:
            remembered = self._vfolders.get(vfolder_id)
            if remembered is None or full or remembered.scans % self._full_every == 0:
                return {}
            return remembered.figures

    def remember(self, vfolder_id: UUID, result: ScanResult) -> None:
        with self._lock:
            remembered = self._vfolders.pop(vfolder_id, _Remembered())
            remembered.figures = result.figures
            remembered.scans = remembered.scans + 1 if result.reused else 1
            if len(result.figures) <= self._max_directories:
                self._vfolders[vfolder_id] = remembered
            while sum(len(r.figures) for r in self._vfolders.values()) > self._max_directories:
                self._vfolders.popitem(last=False)

    def forget(self, vfolder_id: UUID) -> None:
        with self._lock:
            self._vfolders.pop(vfolder_id, None)
