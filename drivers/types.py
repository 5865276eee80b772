"""The values that cross the seam between the app and the drivers: what a file is, what a
change did to a vfolder's usage, and what identifies one version of a file's content."""

from __future__ import annotations

import enum
import os
import threading
from dataclasses import dataclass, field

from drivers.paths import RelativePath


class EntryType(enum.StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: RelativePath
    type: EntryType
    size: int
    mtime_ns: int
    mode: int
    inode: int
    target: str | None = None

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True, slots=True)
class Usage:
    """Bytes of regular files and number of entries (files, directories, symlinks…)."""

    bytes: int = 0
    entries: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.bytes + other.bytes, self.entries + other.entries)

    def __neg__(self) -> Usage:
        return Usage(-self.bytes, -self.entries)

    def __sub__(self, other: Usage) -> Usage:
        return self + (-other)


@dataclass(frozen=True, slots=True)
class FileVersion:
    """What identifies one version of a file's content (for ETags and change detection)."""

    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileVersion:
        return cls(inode=st.st_ino, size=st.st_size, mtime_ns=st.st_mtime_ns)


@dataclass(frozen=True, slots=True)
class Committed:
    """What a committed upload changed: usage added, usage of what it replaced, and the
    version now at the path."""

    added: Usage
    replaced: Usage
    version: FileVersion


@dataclass(frozen=True, slots=True)
class VFolderOwner:
    """Who owns a vfolder, as the services layer knows it: ``user`` or ``group`` and an id."""

    kind: str
    id: str


@dataclass
class CloneProgress:
    """Shared with the thread doing the copy; read by whoever reports progress."""

    bytes_done: int = 0
    files_done: int = 0
    reflinked: int = 0
    skipped: list[str] = field(default_factory=list)  # sockets, devices, fifos
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, size: int, *, reflinked: bool) -> None:
        with self._lock:
            self.bytes_done += size
            self.files_done += 1
            self.reflinked += int(reflinked)


@dataclass(frozen=True, slots=True)
class UsageScan:
    """A vfolder's usage walked on disk, and how much of the walk reused the last one."""

    usage: Usage
    directories: int
    reused: int
