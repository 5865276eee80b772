"""POSIX file operations inside a vfolder, the containment helper's second half.

Every operation starts from a file descriptor of the vfolder root and walks the (already
normalised, see ``drivers.paths``) components one ``openat(O_NOFOLLOW)`` at a time, then acts
on the last component with the ``*at`` system calls (``dir_fd=``), none of which follows a
final symlink. So no symlink is ever followed — not a symlinked parent, not one swapped in
between a check and its use — and nothing outside the vfolder can be reached.

The methods here are blocking; ``PosixFileOps`` exposes them as coroutines that run in the
thread pool.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import heapq
import itertools
import os
import secrets
import shutil
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from uuid import UUID

from drivers.base import Readable, Staged
from drivers.clone import copy_file_data, copy_tree, remove_tree
from drivers.errors import (
    BackendQuotaExceeded,
    BackendUnavailable,
    DirectoryNotEmpty,
    FileChanged,
    InvalidMove,
    NotADirectory,
    NotARegularFile,
    PathExists,
    PathNotFound,
    PreconditionMismatch,
    StorageFull,
    SymlinkNotFollowed,
    UnsafePath,
    VFolderDirectoryMissing,
)
from drivers.layout import VFolderLayout
from drivers.paths import O_DIR, RelativePath, require_single_name
from drivers.staging import StagingPlacement, VolumeStaging
from drivers.threads import run_blocking
from drivers.types import (
    CloneProgress,
    Committed,
    EntryType,
    FileEntry,
    FileVersion,
    Usage,
    UsageScan,
)
from drivers.usage_scan import ScanResult, UsageMemory, scan_usage

# O_NONBLOCK: opening a FIFO planted in a vfolder must not hang a worker thread.
O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
FILE_MODE = 0o644
DIR_MODE = 0o755
IOV_MAX = os.sysconf("SC_IOV_MAX")  # buffers one writev takes
# Names of one directory held in memory at once while listing in sorted order; bigger
# directories are read in several sorted passes, so memory stays bounded.
SORT_BATCH = 131_072


# Staging files of uploads: PUT and form parts, and tus uploads (named after their id).
PUT_STAGING_PREFIX = "put-"
TUS_STAGING_PREFIX = "tus-"
UPLOAD_STAGING_PREFIXES = (PUT_STAGING_PREFIX, TUS_STAGING_PREFIX)


class OpenFile:
    """A regular file opened for reading; raises ``FileChanged`` if it changes under us."""

    def __init__(self, fd: int, version: FileVersion) -> None:
        self.fd = fd
        self.version = version

    def read(self, offset: int, size: int) -> bytes:
        data = os.pread(self.fd, size, offset)
        if FileVersion.of(os.fstat(self.fd)) != self.version:
            raise FileChanged("file changed while being read")
        return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class StagedFile:
    """An upload being written in a staging area (the volume's, or the vfolder's hidden one:
    see ``drivers.staging``), invisible through the API."""

    def __init__(self, staging_fd: int, name: str, fd: int) -> None:
        self.staging_fd = staging_fd
        self.name = name
        self.fd = fd
        self.size = 0

    def write_chunks(self, chunks: list[bytes]) -> None:
        """All of ``chunks``, in order, in as few system calls as the kernel allows."""
        pending = [memoryview(chunk) for chunk in chunks if chunk]
        start = self.size
        while pending:
            with _out_of_space_refused():
                done = os.writev(self.fd, pending[:IOV_MAX])
            self.size += done
            while pending and done >= len(pending[0]):
                done -= len(pending.pop(0))
            if done:
                pending[0] = pending[0][done:]
        # Linux starts writing these pages back now (and drops the ones already written), so
        # the fsync that acknowledges an upload finds little left to do, and an upload does
        # not push everything else out of the page cache.
        os.posix_fadvise(self.fd, start, self.size - start, os.POSIX_FADV_DONTNEED)

    def truncate(self, length: int) -> None:
        """Back to ``length`` bytes: drops what was written but never acknowledged."""
        os.ftruncate(self.fd, length)
        os.lseek(self.fd, length, os.SEEK_SET)
        self.size = length

    def sync(self) -> None:
        with _out_of_space_refused():  # delayed allocation: the fsync may be what finds out
            os.fsync(self.fd)

    def try_lock(self) -> bool:
        """An exclusive lock on the staging file, held until closed: one writer at a time,
        across processes (and across NFSv4 clients)."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with contextlib.suppress(OSError):
            os.close(self.staging_fd)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with contextlib.suppress(OSError):
            os.unlink(self.name, dir_fd=self.staging_fd)
        with contextlib.suppress(OSError):
            os.close(self.staging_fd)


def _place(src_dir: int, src: str, dst_dir: int, dst: str, *, replace: bool) -> None:
    """Moves a name: rename() when replacing; link() then unlink() otherwise, because link()
    refuses an existing name atomically and rename() cannot."""
    if replace:
        os.rename(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
        return
    os.link(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir, follow_symlinks=False)
    os.unlink(src, dir_fd=src_dir)


RENAME_ATTEMPTS = 1000


def _numbered_names(name: str) -> Iterator[str]:
    """``name``, then ``stem (1).ext``, ``stem (2).ext``… (a leading dot is no extension)."""
    yield name
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    for n in range(1, RENAME_ATTEMPTS):
        yield f"{stem} ({n}){ext}"


def _place_by_reflink(
    staged: StagedFile, parent_fd: int, name: str, *, replace: bool
) -> FileVersion | None:
    """The staged data, shared (reflink) or copied into a hidden file in the destination
    directory, then moved onto ``name`` there. None when ``name`` exists and may not be
    replaced."""
    temporary = f".sp-commit-{secrets.token_hex(6)}"
    source = os.open(staged.name, O_READ, dir_fd=staged.staging_fd)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        target = os.open(temporary, flags, FILE_MODE, dir_fd=parent_fd)
        try:
            copy_file_data(source, target, staged.size)
            os.fchmod(target, FILE_MODE)
            os.fsync(target)
            version = FileVersion.of(os.fstat(target))
        finally:
            os.close(target)
    finally:
        os.close(source)
    try:
        _place(parent_fd, temporary, parent_fd, name, replace=replace)
    except FileExistsError:
        os.unlink(temporary, dir_fd=parent_fd)
        return None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=parent_fd)
        raise
    return version


@contextlib.contextmanager
def _out_of_space_refused() -> Iterator[None]:
    """A full volume, or a backend quota, as the refusal it is rather than an OS error."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StorageFull(f"no space left on the volume: {exc.strerror}") from exc
        if exc.errno == errno.EDQUOT:
            raise BackendQuotaExceeded(
                f"the storage's quota refused the write: {exc.strerror}"
            ) from exc
        raise


def _classify(exc: OSError, what: RelativePath) -> Exception:
    if exc.errno == errno.ENOENT:
        return PathNotFound(f"{what or '/'} does not exist")
    if exc.errno == errno.ELOOP:
        return SymlinkNotFollowed(f"{what} is or goes through a symlink")
    if exc.errno == errno.ENOTDIR:
        return NotADirectory(f"{what} is not a directory")
    if exc.errno == errno.ENAMETOOLONG:
        return UnsafePath(f"{what}: name too long for this filesystem")
    return BackendUnavailable(f"{what}: {exc.strerror or exc}")


def _entry(dir_fd: int, path: RelativePath) -> FileEntry:
    st = os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False)
    return _entry_from_stat(dir_fd, path, st)


def _entry_from_stat(dir_fd: int, path: RelativePath, st: os.stat_result) -> FileEntry:
    target = None
    if stat.S_ISREG(st.st_mode):
        kind = EntryType.FILE
    elif stat.S_ISDIR(st.st_mode):
        kind = EntryType.DIR
    elif stat.S_ISLNK(st.st_mode):
        kind = EntryType.SYMLINK
        with contextlib.suppress(OSError):
            target = os.readlink(path.name, dir_fd=dir_fd)
    else:
        kind = EntryType.OTHER
    return FileEntry(
        path=path,
        type=kind,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        mode=stat.S_IMODE(st.st_mode),
        inode=st.st_ino,
        target=target,
    )


def _usage_of_stat(st: os.stat_result) -> Usage:
    return Usage(st.st_size if stat.S_ISREG(st.st_mode) else 0, 1)


class SortedNamesCache:
    """Sorted names of recently listed directories, so that paging through a big directory
    costs one scan and sort, not one per page. An entry is valid while the directory's
    mtime and ctime are unchanged (any entry added, removed or renamed changes them) and
    for a few seconds at most, against filesystems with coarse timestamps."""

    def __init__(self, *, max_names: int = 4 * SORT_BATCH, ttl_seconds: float = 10.0) -> None:
        self._entries: OrderedDict[tuple[int, int], tuple[tuple[int, int], float, list[str]]]
        self._entries = OrderedDict()
        self._max_names = max_names
        self._ttl = ttl_seconds
        self._lock = threading.Lock()

    @staticmethod
    def _key(st: os.stat_result) -> tuple[tuple[int, int], tuple[int, int]]:
        return (st.st_dev, st.st_ino), (st.st_mtime_ns, st.st_ctime_ns)

    def get(self, fd: int) -> list[str] | None:
        key, version = self._key(os.fstat(fd))
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            cached_version, stored_at, names = found
            if cached_version != version or time.monotonic() - stored_at > self._ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return names

    def put(self, fd: int, names: list[str]) -> None:
        key, version = self._key(os.fstat(fd))
        with self._lock:
            self._entries[key] = (version, time.monotonic(), names)
            self._entries.move_to_end(key)
            while sum(len(v[2]) for v in self._entries.values()) > self._max_names:
                self._entries.popitem(last=False)


class PosixFileOpsSync:
    """The blocking implementation."""

    def __init__(
        self,
        layout: VFolderLayout,
        *,
        staging: StagingPlacement | None = None,
        reserved_everywhere: frozenset[str] = frozenset(),
    ) -> None:
        self.layout = layout
        # The driver decides where uploads are staged: inside the vfolder's quota boundary
        # when a rename out of the volume's area would cross one (drivers/staging.py).
        self.staging: StagingPlacement = staging or VolumeStaging(layout)
        # Names the filesystem itself gives every directory (CephFS's virtual ``.snap``):
        # refused at any depth, never listed.
        self.reserved_everywhere = reserved_everywhere
        self._reserved = self.staging.reserved | reserved_everywhere
        self._names_cache = SortedNamesCache()

    def _refuse_reserved(self, path: RelativePath) -> None:
        """The proxy's own names at a vfolder's root, and the filesystem's own names at any
        depth, are nobody's to read or write."""
        if path.parts and path.parts[0] in self._reserved:
            raise UnsafePath(f"{path.parts[0]} is reserved for the storage proxy's own use")
        for name in path.parts[1:]:
            if name in self.reserved_everywhere:
                raise UnsafePath(f"{name} is reserved: the filesystem's own, in every directory")

    # -- walking -------------------------------------------------------------------------

    def open_root(self, vfolder_id: UUID) -> int:
        try:
            return os.open(self.layout.vfolder_path(vfolder_id), O_DIR)
        except FileNotFoundError:
            raise VFolderDirectoryMissing(f"vfolder {vfolder_id} has no directory") from None
        except OSError as exc:
            raise BackendUnavailable(f"cannot open vfolder {vfolder_id}: {exc}") from exc

    def _open_dir(
        self, root_fd: int, path: RelativePath, *, create: bool = False
    ) -> tuple[int, int]:
        """A new fd for the directory at ``path``, walked without following any symlink, and
        how many directories were made on the way (only with ``create``)."""
        fd = os.dup(root_fd)
        created = 0
        try:
            for depth, name in enumerate(path.parts, start=1):
                try:
                    next_fd = os.open(name, O_DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(name, DIR_MODE, dir_fd=fd)
                        created += 1
                    except FileExistsError:
                        pass  # made concurrently: fine, it is opened (never followed) next
                    next_fd = os.open(name, O_DIR, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise self._not_a_dir(fd, RelativePath(path.parts[:depth])) from None
                    raise
                os.close(fd)
                fd = next_fd
        except OSError as exc:
            os.close(fd)
            raise _classify(exc, path) from exc
        except BaseException:
            os.close(fd)
            raise
        return fd, created

    @staticmethod
    def _not_a_dir(parent_fd: int, path: RelativePath) -> Exception:
        try:
            st = os.stat(path.name, dir_fd=parent_fd, follow_symlinks=False)
        except OSError as exc:
            return _classify(exc, path)
        if stat.S_ISLNK(st.st_mode):
            return SymlinkNotFollowed(f"{path} is a symlink; the proxy never follows one")
        return NotADirectory(f"{path} is not a directory")

    @contextlib.contextmanager
    def _parent(self, vfolder_id: UUID, path: RelativePath) -> Iterator[int]:
        """The fd of ``path``'s parent directory."""
        with self._parent_creating(vfolder_id, path, create=False) as (parent_fd, _created):
            yield parent_fd

    @contextlib.contextmanager
    def _parent_creating(
        self, vfolder_id: UUID, path: RelativePath, *, create: bool
    ) -> Iterator[tuple[int, int]]:
        """The fd of ``path``'s parent directory and how many directories were made for it."""
        if path.is_root:
            raise UnsafePath("the vfolder root itself cannot be the target of this operation")
        self._refuse_reserved(path)
        root_fd = self.open_root(vfolder_id)
        try:
            parent_fd, created = self._open_dir(root_fd, path.parent, create=create)
        finally:
            os.close(root_fd)
        try:
            yield parent_fd, created
        finally:
            os.close(parent_fd)

    @contextlib.contextmanager
    def _directory(self, vfolder_id: UUID, path: RelativePath) -> Iterator[int]:
        self._refuse_reserved(path)
        root_fd = self.open_root(vfolder_id)
        try:
            fd, _ = self._open_dir(root_fd, path)
        finally:
            os.close(root_fd)
        try:
            yield fd
        finally:
            os.close(fd)

    def _lstat(self, parent_fd: int, path: RelativePath) -> os.stat_result | None:
        try:
            return os.stat(path.name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _classify(exc, path) from exc

    # -- reading -------------------------------------------------------------------------

    def stat(self, vfolder_id: UUID, path: RelativePath) -> FileEntry:
        if path.is_root:
            root_fd = self.open_root(vfolder_id)
            try:
                st = os.fstat(root_fd)
            finally:
                os.close(root_fd)
            return _entry_from_stat(-1, path, st)
        with self._parent(vfolder_id, path) as parent_fd:
            found = self._lstat(parent_fd, path)
            if found is None:
                raise PathNotFound(f"{path} does not exist")
            return _entry_from_stat(parent_fd, path, found)

    def open_for_read(self, vfolder_id: UUID, path: RelativePath) -> OpenFile:
        with self._parent(vfolder_id, path) as parent_fd:
            try:
                fd = os.open(path.name, O_READ, dir_fd=parent_fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise SymlinkNotFollowed(f"{path} is a symlink") from None
                raise _classify(exc, path) from exc
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise NotARegularFile(f"{path} is not a regular file")
        return OpenFile(fd, FileVersion.of(st))

    def iter_tree(
        self,
        vfolder_id: UUID,
        path: RelativePath,
        *,
        after: tuple[str, ...] | None,
        recursive: bool,
    ) -> Generator[FileEntry]:
        """Entries below ``path`` in depth-first order, each directory's children sorted by
        name, starting strictly after ``after`` (components relative to ``path``). Keyed by
        name, not position: entries added or removed meanwhile never shift a later page.

        Each component of ``after`` is opened relative to its parent, so each must be one
        name: ``..`` or ``/etc`` would walk out of the vfolder (``UnsafePath``)."""
        for name in after or ():
            require_single_name(name)
        with self._directory(vfolder_id, path) as fd:
            yield from self._iter_dir(fd, path, after=after, recursive=recursive)

    def _iter_dir(
        self,
        fd: int,
        base: RelativePath,
        *,
        after: tuple[str, ...] | None,
        recursive: bool,
    ) -> Iterator[FileEntry]:
        hidden = self._reserved if base.is_root else self.reserved_everywhere
        resume_after = None
        if after:
            resume_after = after[0]
            if recursive and resume_after not in hidden:
                # ``after[0]`` was already listed; what follows it is its own subtree (from
                # where the cursor stopped inside it), then its later siblings.
                yield from self._descend(fd, base.child(after[0]), after=after[1:] or None)
        for name in self._sorted_names(fd, after=resume_after):
            if name in hidden:
                continue
            child = base.child(name)
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we were listing
            entry = _entry_from_stat(fd, child, st)
            yield entry
            if recursive and entry.type is EntryType.DIR:
                yield from self._descend(fd, child, after=None)

    def _descend(
        self, parent_fd: int, path: RelativePath, *, after: tuple[str, ...] | None
    ) -> Iterator[FileEntry]:
        try:
            fd = os.open(path.name, O_DIR, dir_fd=parent_fd)
        except OSError:
            return  # gone, or replaced by a file or a symlink since: nothing below to list
        try:
            yield from self._iter_dir(fd, path, after=after, recursive=True)
        finally:
            os.close(fd)

    def _sorted_names(self, fd: int, *, after: str | None) -> Iterator[str]:
        """Names in ``fd`` greater than ``after``, ascending."""
        names = self._names_cache.get(fd)
        if names is None:
            names = self._read_names(fd)
        if names is None:
            yield from self._sorted_names_in_batches(fd, after=after)
            return
        start = 0 if after is None else bisect.bisect_right(names, after)
        yield from itertools.islice(names, start, None)

    def _read_names(self, fd: int) -> list[str] | None:
        """All names, sorted, or None for a directory too big to hold (over SORT_BATCH)."""
        names: list[str] = []
        with os.scandir(fd) as it:
            for entry in it:
                names.append(entry.name)
                if len(names) > SORT_BATCH:
                    return None
        names.sort()
        self._names_cache.put(fd, names)
        return names

    @staticmethod
    def _sorted_names_in_batches(fd: int, *, after: str | None) -> Iterator[str]:
        """For huge directories: several sorted passes, holding SORT_BATCH names at a time."""
        while True:
            with os.scandir(fd) as it:
                names = (e.name for e in it)
                if after is not None:
                    bound = after
                    names = (n for n in names if n > bound)
                batch = heapq.nsmallest(SORT_BATCH + 1, names)
            yield from batch[:SORT_BATCH]
            if len(batch) <= SORT_BATCH:
                return
            after = batch[SORT_BATCH - 1]

    def usage(self, vfolder_id: UUID) -> Usage:
        """Usage of the whole vfolder by walking it (the fallback without FastUsageCapable)."""
        root_fd = self.open_root(vfolder_id)
        try:
            return scan_usage(root_fd, hidden=self._reserved).usage
        finally:
            os.close(root_fd)

    # -- writing -------------------------------------------------------------------------

    def create_staged(self, vfolder_id: UUID) -> StagedFile:
        """A new staging file for an upload into ``vfolder_id``."""
        staged = self.open_staged(
            f"{PUT_STAGING_PREFIX}{secrets.token_hex(12)}", create=True, vfolder_id=vfolder_id
        )
        # Locked by its writer until committed or discarded: a writer that dies drops the
        # lock with its process, and the staging sweep knows the file is nobody's.
        staged.try_lock()
        return staged

    def stage(self, vfolder_id: UUID, chunks: list[bytes]) -> StagedFile:
        """A new staging file holding ``chunks``, synced."""
        staged = self.create_staged(vfolder_id)
        try:
            staged.write_chunks(chunks)
            staged.sync()
        except BaseException:
            staged.discard()
            raise
        return staged

    def staging_candidates(self, *, older_than: float) -> list[str]:
        """The keys of upload staging files (PUT, form, tus) last written before
        ``older_than`` (a ``time.time()``): what a staging sweep may look at. A key is the
        file's name, prefixed with its vfolder where staging is per vfolder
        (``drivers.staging``); its last ``/``-separated part is always the name."""
        keys = []
        for directory, prefix in self.staging.areas():
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue  # a vfolder deleted meanwhile
            for entry in entries:
                if not entry.name.startswith(UPLOAD_STAGING_PREFIXES):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_mtime < older_than:
                    keys.append(prefix + entry.name)
        return sorted(keys)

    def remove_abandoned_staged(self, key: str, *, older_than: float) -> bool:
        """Removes the staging file ``key`` if no process holds its lock (its writer died)
        and it was not written since ``older_than``. False when it is in use, or gone."""
        located = self.staging.locate(key)
        if located is None:
            return False
        directory, name = located
        try:
            staging_fd = os.open(directory, O_DIR)
        except FileNotFoundError:
            return False
        try:
            try:
                fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=staging_fd)
            except OSError:
                return False
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False  # a live writer holds it
                held = os.fstat(fd)
                try:
                    named = os.stat(name, dir_fd=staging_fd, follow_symlinks=False)
                except FileNotFoundError:
                    return False
                if (held.st_dev, held.st_ino) != (named.st_dev, named.st_ino):
                    return False  # renamed away and replaced meanwhile
                if held.st_mtime >= older_than:
                    return False
                os.unlink(name, dir_fd=staging_fd)
                return True
            finally:
                os.close(fd)
        finally:
            os.close(staging_fd)

    def staged_exists(self, name: str, *, vfolder_id: UUID) -> bool:
        """Whether the staging file ``name`` of an upload into ``vfolder_id`` is still there."""
        return any((d / name).exists() for d in self.staging.locations(vfolder_id))

    def open_staged(self, name: str, *, create: bool, vfolder_id: UUID) -> StagedFile:
        """A staging file by name, for an upload into ``vfolder_id``: made new (``create``),
        or reopened to append (resumable uploads). Raises ``PathNotFound`` when reopening one
        that is gone."""
        if create:
            try:
                staging_fd = os.open(self.staging.prepare(vfolder_id), O_DIR)
            except FileNotFoundError:
                raise VFolderDirectoryMissing(f"vfolder {vfolder_id} has no directory") from None
            except OSError as exc:
                raise BackendUnavailable(f"cannot open the staging area: {exc}") from exc
            return self._open_staged_in(staging_fd, name, create=True)
        for directory in self.staging.locations(vfolder_id):
            try:
                staging_fd = os.open(directory, O_DIR)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise BackendUnavailable(f"cannot open the staging area: {exc}") from exc
            try:
                return self._open_staged_in(staging_fd, name, create=False)
            except PathNotFound:
                continue
        raise PathNotFound(f"staging file {name} is gone")

    @staticmethod
    def _open_staged_in(staging_fd: int, name: str, *, create: bool) -> StagedFile:
        """Opens ``name`` in the staging directory ``staging_fd``, which the StagedFile then
        owns (closed here on failure)."""
        flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_CREAT | os.O_EXCL if create else 0)
        try:
            fd = os.open(name, flags, FILE_MODE, dir_fd=staging_fd)
        except FileNotFoundError:
            os.close(staging_fd)
            raise PathNotFound(f"staging file {name} is gone") from None
        except OSError as exc:
            os.close(staging_fd)
            raise BackendUnavailable(f"cannot open staging file {name}: {exc}") from exc
        if create:
            # Its final mode from the start, whatever the umask (the staging directory keeps
            # it private), so that committing it changes nothing but its name.
            os.fchmod(fd, FILE_MODE)
        staged = StagedFile(staging_fd, name, fd)
        staged.size = os.lseek(fd, 0, os.SEEK_END)
        return staged

    def concatenate_staged(self, target: StagedFile, parts: list[str]) -> None:
        """Append the named staging files to ``target``, in order, then fsync it. In-kernel
        copies (copy_file_range) where the filesystem allows: no bytes through Python."""
        for name in parts:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=target.staging_fd)
            try:
                remaining = os.fstat(fd).st_size
                offset = 0
                while remaining > 0:
                    copied = os.copy_file_range(fd, target.fd, remaining, offset)
                    if copied == 0:
                        break
                    offset += copied
                    remaining -= copied
                    target.size += copied
            finally:
                os.close(fd)
        os.fsync(target.fd)

    def copy_into_staged(self, source: OpenFile, target: StagedFile) -> None:
        size = os.fstat(source.fd).st_size
        copy_file_data(source.fd, target.fd, size)
        target.size = size

    def remove_staged(self, name: str, *, vfolder_id: UUID) -> None:
        for directory in self.staging.locations(vfolder_id):
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()

    def _copy_staging(self, vfolder_id: UUID) -> Path:
        return self.layout.staging / f"copy-{vfolder_id.hex}"

    def receive_copy(
        self,
        source_root: Path,
        vfolder_id: UUID,
        progress: CloneProgress,
        *,
        skip: frozenset[str] = frozenset(),
    ) -> None:
        """Copies ``source_root``'s tree into the staging area, then moves it into place as
        the vfolder's directory (which must not be in use: a vfolder being created). What an
        earlier, interrupted attempt left — half a copy, or a whole one — is cleared first.
        ``skip``: the source driver's reserved names at the top (``reserved_names``)."""
        self.discard_copy(vfolder_id)
        staging = self._copy_staging(vfolder_id)
        copy_tree(source_root, staging, progress, skip=skip)
        final = self.layout.vfolder_path(vfolder_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(final)

    def discard_copy(self, vfolder_id: UUID) -> None:
        """Everything ``receive_copy`` may have made for the vfolder."""
        for path in (self._copy_staging(vfolder_id), self.layout.vfolder_path(vfolder_id)):
            remove_tree(path)

    def commit_staged(
        self,
        staged: StagedFile,
        vfolder_id: UUID,
        path: RelativePath,
        *,
        replace: bool,
        parents: bool,
        if_match: FileVersion | None = None,
        durable: bool = True,
    ) -> Committed:
        """Make the staged file durable and move it to ``path`` in one atomic step; with
        ``durable`` false, the new directory entry is left to ``sync_entry``.

        Raises ``PathExists`` when ``replace`` is
        false and something is there, ``PreconditionMismatch`` when ``if_match`` is given
        and the current file is not that version."""
        staged_stat = os.fstat(staged.fd)
        if stat.S_IMODE(staged_stat.st_mode) != FILE_MODE:  # staged by an older release
            os.fchmod(staged.fd, FILE_MODE)  # a mode change leaves inode, size and mtime alone
        os.fsync(staged.fd)  # nothing left to write when the caller synced it already
        # The same inode and mtime after the rename: this is the version clients will see.
        version = FileVersion.of(staged_stat)
        with self._parent_creating(vfolder_id, path, create=parents) as (parent_fd, made):
            current = self._lstat(parent_fd, path)
            if current is not None and stat.S_ISDIR(current.st_mode):
                raise NotARegularFile(f"{path} is a directory")
            if if_match is not None and (
                current is None
                or not stat.S_ISREG(current.st_mode)
                or FileVersion.of(current) != if_match
            ):
                raise PreconditionMismatch(f"{path} is not the version named by If-Match")
            try:
                _place(staged.staging_fd, staged.name, parent_fd, path.name, replace=replace)
            except FileExistsError:
                raise PathExists(f"{path} exists") from None
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                # Staging and destination on one filesystem but in different subvolumes
                # (btrfs with volume staging): share the data into a new file beside the
                # destination instead. A driver that stages inside the vfolder never gets here.
                copied = _place_by_reflink(staged, parent_fd, path.name, replace=replace)
                if copied is None:
                    raise PathExists(f"{path} exists") from None
                os.unlink(staged.name, dir_fd=staged.staging_fd)
                version = copied
            replaced = _usage_of_stat(current) if replace and current is not None else Usage()
            if durable:
                os.fsync(parent_fd)
        staged.discard()  # closes the fds; the name is gone already
        return Committed(added=Usage(staged.size, 1 + made), replaced=replaced, version=version)

    def sync_entry(self, vfolder_id: UUID, path: RelativePath) -> None:
        """The directory entry of ``path`` made durable (an fsync of its parent)."""
        with self._parent(vfolder_id, path) as parent_fd:
            os.fsync(parent_fd)

    def free_name(self, vfolder_id: UUID, path: RelativePath) -> RelativePath:
        """The first of ``name``, ``name (1).ext``, ``name (2).ext``… that nothing holds now.
        A placement there still refuses a name taken meanwhile; the caller picks again."""
        for name in _numbered_names(path.name):
            candidate = RelativePath((*path.parts[:-1], name))
            try:
                self.stat(vfolder_id, candidate)
            except PathNotFound:
                return candidate
        raise PathExists(f"{path} and its numbered alternatives all exist")

    def missing_entries(self, vfolder_id: UUID, path: RelativePath) -> int:
        missing = 0
        for depth in range(len(path.parts), 0, -1):
            try:
                self.stat(vfolder_id, RelativePath(path.parts[:depth]))
            except PathNotFound:
                missing += 1
                continue
            break
        return missing

    def mkdir(
        self, vfolder_id: UUID, path: RelativePath, *, parents: bool, exist_ok: bool
    ) -> Usage:
        """Returns the usage of the directories it created."""
        if path.is_root:
            if exist_ok:
                return Usage()
            raise PathExists("the vfolder root exists")
        with self._parent_creating(vfolder_id, path, create=parents) as (parent_fd, made):
            try:
                os.mkdir(path.name, DIR_MODE, dir_fd=parent_fd)
            except FileExistsError:
                st = self._lstat(parent_fd, path)
                if st is None or not stat.S_ISDIR(st.st_mode) or not exist_ok:
                    raise PathExists(f"{path} exists") from None
                return Usage(0, made)
            except OSError as exc:
                raise _classify(exc, path) from exc
            return Usage(0, made + 1)

    def move(
        self, vfolder_id: UUID, source: RelativePath, target: RelativePath, *, overwrite: bool
    ) -> Usage:
        """Rename within the vfolder; returns the usage of what was replaced at ``target``."""
        if source.is_root or target.is_root:
            raise InvalidMove("the vfolder root cannot be moved or replaced")
        if target.is_within(source):
            raise InvalidMove(f"cannot move {source} into itself")
        with (
            self._parent(vfolder_id, source) as src_parent,
            self._parent(vfolder_id, target) as dst_parent,
        ):
            src = self._lstat(src_parent, source)
            if src is None:
                raise PathNotFound(f"{source} does not exist")
            dst = self._lstat(dst_parent, target)
            replaced = Usage()
            if dst is not None:
                if not overwrite:
                    raise PathExists(f"{target} exists")
                if stat.S_ISDIR(dst.st_mode) != stat.S_ISDIR(src.st_mode):
                    raise InvalidMove(f"cannot replace {target} with a different kind of entry")
                replaced = _usage_of_stat(dst)
            try:
                os.rename(source.name, target.name, src_dir_fd=src_parent, dst_dir_fd=dst_parent)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise DirectoryNotEmpty(f"{target} is a non-empty directory") from None
                raise _classify(exc, target) from exc
            os.fsync(dst_parent)
            return replaced

    def delete(self, vfolder_id: UUID, path: RelativePath, *, recursive: bool) -> Usage:
        """Remove a file, symlink or directory; returns the usage freed."""
        with self._parent(vfolder_id, path) as parent_fd:
            st = self._lstat(parent_fd, path)
            if st is None:
                raise PathNotFound(f"{path} does not exist")
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(path.name, dir_fd=parent_fd)
                return _usage_of_stat(st)
            if not recursive:
                try:
                    os.rmdir(path.name, dir_fd=parent_fd)
                except OSError as exc:
                    if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                        raise DirectoryNotEmpty(f"{path} is not empty") from None
                    raise _classify(exc, path) from exc
                return Usage(0, 1)
            # Out of sight in one rename, then measured and removed at leisure; a crash in
            # between leaves it in the trash, which the purger empties.
            trash_fd = os.open(self.layout.trash, O_DIR)
            try:
                trash_name = self.layout.new_file_trash_name(vfolder_id)
                try:
                    os.rename(path.name, trash_name, src_dir_fd=parent_fd, dst_dir_fd=trash_fd)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    # The vfolder is a quota tree or a subvolume the tree cannot leave by a
                    # rename (XFS project, btrfs, Weka/NetApp directory quotas, a CephFS
                    # quota realm): removed where it is instead.
                    return self._remove_tree(parent_fd, path.name, st)
                return self._remove_tree(trash_fd, trash_name, st)
            finally:
                os.close(trash_fd)

    @staticmethod
    def _remove_tree(parent_fd: int, name: str, st: os.stat_result) -> Usage:
        """Measure the directory ``name`` (whose own stat is ``st``), then remove it."""
        tree_fd = os.open(name, O_DIR, dir_fd=parent_fd)
        try:
            freed = scan_usage(tree_fd).usage + _usage_of_stat(st)
        finally:
            os.close(tree_fd)
        shutil.rmtree(name, dir_fd=parent_fd)
        return freed


# -- the async face --------------------------------------------------------------------------


class PosixStaged:
    """``drivers.base.Staged`` over a file in a staging area."""

    def __init__(self, file: StagedFile) -> None:
        self.file = file

    @property
    def size(self) -> int:
        return self.file.size

    async def write(self, chunks: list[bytes]) -> None:
        await run_blocking(self.file.write_chunks, chunks)

    async def sync(self) -> None:
        await run_blocking(self.file.sync)

    async def truncate(self, length: int) -> None:
        await run_blocking(self.file.truncate, length)

    async def try_lock(self) -> bool:
        return await run_blocking(self.file.try_lock)

    async def close(self) -> None:
        await run_blocking(self.file.close)

    async def discard(self) -> None:
        await run_blocking(self.file.discard)


class PosixReadable:
    """``drivers.base.Readable`` over a regular file opened inside a vfolder."""

    def __init__(self, file: OpenFile) -> None:
        self.file = file

    @property
    def version(self) -> FileVersion:
        return self.file.version

    async def read(self, offset: int, size: int) -> bytes:
        return await run_blocking(self.file.read, offset, size)

    async def close(self) -> None:
        # Closing a descriptor opened read-only does no I/O: no thread needed, and it then
        # also works where no thread may be started (a response's shielded cleanup).
        self.file.close()


def staged_file(staged: object) -> StagedFile:
    """The blocking file behind a handle these operations made (any other is a bug)."""
    if not isinstance(staged, PosixStaged):
        raise TypeError(f"not a staged file of the POSIX file operations: {staged!r}")
    return staged.file


def open_file(readable: object) -> OpenFile:
    if not isinstance(readable, PosixReadable):
        raise TypeError(f"not a file opened by the POSIX file operations: {readable!r}")
    return readable.file


class PosixFileOps:
    """File operations for the services layer: every blocking call runs in the thread pool."""

    def __init__(
        self,
        layout: VFolderLayout,
        *,
        staging: StagingPlacement | None = None,
        reserved_everywhere: frozenset[str] = frozenset(),
    ) -> None:
        self.sync = PosixFileOpsSync(
            layout, staging=staging, reserved_everywhere=reserved_everywhere
        )
        self._scanned = UsageMemory()

    async def scan_usage(self, vfolder_id: UUID, *, full: bool) -> UsageScan:
        """The vfolder's usage walked on disk (its reserved names left out: writes under
        way, counted in their reservations), reusing what this process's last walks found in
        unchanged directories unless ``full``."""
        previous = self._scanned.previous(vfolder_id, full=full)

        def walk() -> ScanResult:
            root = self.sync.open_root(vfolder_id)
            try:
                return scan_usage(root, previous, hidden=self.reserved_names)
            finally:
                os.close(root)

        result = await run_blocking(walk)
        self._scanned.remember(vfolder_id, result)
        return UsageScan(result.usage, result.directories, result.reused)

    def forget_usage(self, vfolder_id: UUID) -> None:
        """Drop what the walks of ``vfolder_id`` remembered (it is gone)."""
        self._scanned.forget(vfolder_id)

    @property
    def layout(self) -> VFolderLayout:
        return self.sync.layout

    @property
    def staging(self) -> StagingPlacement:
        return self.sync.staging

    @property
    def reserved_names(self) -> frozenset[str]:
        """Names at a vfolder's root that are the proxy's own (in-vfolder staging), or the
        filesystem's (CephFS's ``.snap``)."""
        return self.sync.staging.reserved | self.sync.reserved_everywhere

    async def stat(self, vfolder_id: UUID, path: RelativePath) -> FileEntry:
        return await run_blocking(self.sync.stat, vfolder_id, path)

    async def open_for_read(self, vfolder_id: UUID, path: RelativePath) -> PosixReadable:
        return PosixReadable(await run_blocking(self.sync.open_for_read, vfolder_id, path))

    async def list_page(
        self,
        vfolder_id: UUID,
        path: RelativePath,
        *,
        after: tuple[str, ...] | None,
        recursive: bool,
        limit: int,
    ) -> tuple[list[FileEntry], bool]:
        """Up to ``limit`` entries and whether more follow."""

        def page() -> tuple[list[FileEntry], bool]:
            entries = self.sync.iter_tree(vfolder_id, path, after=after, recursive=recursive)
            try:
                taken = list(itertools.islice(entries, limit + 1))
            finally:
                entries.close()
            return taken[:limit], len(taken) > limit

        return await run_blocking(page)

    async def listing(
        self, vfolder_id: UUID, path: RelativePath, *, recursive: bool, batch: int
    ) -> AsyncIterator[list[FileEntry]]:
        """A whole listing in batches of up to ``batch`` entries, read lazily in the thread
        pool (memory stays bounded by one batch, however big the tree)."""
        entries = self.sync.iter_tree(vfolder_id, path, after=None, recursive=recursive)
        try:
            while taken := await run_blocking(lambda: list(itertools.islice(entries, batch))):
                yield taken
        finally:
            with contextlib.suppress(Exception):
                await run_blocking(entries.close)

    async def create_staged(self, vfolder_id: UUID) -> PosixStaged:
        """A new staged file for an upload to ``vfolder_id``, where the driver's staging
        placement puts it: the final rename stays inside the vfolder's quota boundary."""
        return PosixStaged(await run_blocking(self.sync.create_staged, vfolder_id))

    async def stage(self, vfolder_id: UUID, chunks: list[bytes]) -> PosixStaged:
        return PosixStaged(await run_blocking(self.sync.stage, vfolder_id, chunks))

    async def open_staged(self, vfolder_id: UUID, name: str, *, create: bool) -> PosixStaged:
        return PosixStaged(
            await run_blocking(
                lambda: self.sync.open_staged(name, create=create, vfolder_id=vfolder_id)
            )
        )

    async def staged_exists(self, vfolder_id: UUID, name: str) -> bool:
        return await run_blocking(lambda: self.sync.staged_exists(name, vfolder_id=vfolder_id))

    async def copy_into_staged(self, source: Readable, staged: Staged) -> None:
        """All of ``source`` into the empty ``staged`` (by reflink where the filesystem can)."""
        await run_blocking(self.sync.copy_into_staged, open_file(source), staged_file(staged))

    async def remove_staged(self, vfolder_id: UUID, name: str) -> None:
        await run_blocking(lambda: self.sync.remove_staged(name, vfolder_id=vfolder_id))

    async def staging_candidates(self, *, older_than: float) -> list[str]:
        return await run_blocking(lambda: self.sync.staging_candidates(older_than=older_than))

    async def remove_abandoned_staged(self, name: str, *, older_than: float) -> bool:
        return await run_blocking(
            lambda: self.sync.remove_abandoned_staged(name, older_than=older_than)
        )

    async def receive_copy(
        self,
        source_root: Path,
        vfolder_id: UUID,
        progress: CloneProgress,
        *,
        skip: frozenset[str] = frozenset(),
    ) -> None:
        await run_blocking(
            lambda: self.sync.receive_copy(source_root, vfolder_id, progress, skip=skip)
        )

    async def discard_copy(self, vfolder_id: UUID) -> None:
        await run_blocking(self.sync.discard_copy, vfolder_id)

    async def concatenate_staged(self, target: Staged, parts: list[str]) -> None:
        await run_blocking(self.sync.concatenate_staged, staged_file(target), parts)

    async def commit_staged(
        self,
        staged: Staged,
        vfolder_id: UUID,
        path: RelativePath,
        *,
        replace: bool,
        parents: bool,
        if_match: FileVersion | None = None,
        durable: bool = True,
    ) -> Committed:
        return await run_blocking(
            lambda: self.sync.commit_staged(
                staged_file(staged),
                vfolder_id,
                path,
                replace=replace,
                parents=parents,
                if_match=if_match,
                durable=durable,
            )
        )

    async def sync_entry(self, vfolder_id: UUID, path: RelativePath) -> None:
        await run_blocking(self.sync.sync_entry, vfolder_id, path)

    async def free_name(self, vfolder_id: UUID, path: RelativePath) -> RelativePath:
        return await run_blocking(self.sync.free_name, vfolder_id, path)

    async def missing_entries(self, vfolder_id: UUID, path: RelativePath) -> int:
        return await run_blocking(self.sync.missing_entries, vfolder_id, path)

    async def mkdir(
        self, vfolder_id: UUID, path: RelativePath, *, parents: bool, exist_ok: bool
    ) -> Usage:
        return await run_blocking(
            lambda: self.sync.mkdir(vfolder_id, path, parents=parents, exist_ok=exist_ok)
        )

    async def move(
        self, vfolder_id: UUID, source: RelativePath, target: RelativePath, *, overwrite: bool
    ) -> Usage:
        return await run_blocking(
            lambda: self.sync.move(vfolder_id, source, target, overwrite=overwrite)
        )

    async def delete(self, vfolder_id: UUID, path: RelativePath, *, recursive: bool) -> Usage:
        return await run_blocking(lambda: self.sync.delete(vfolder_id, path, recursive=recursive))

    async def usage(self, vfolder_id: UUID) -> Usage:
        return await run_blocking(self.sync.usage, vfolder_id)
