"""Copying a vfolder's tree: regular files (as reflinks where the filesystem can, else copied in
the kernel), directories (empty ones included), symlinks as symlinks — never followed — with
modes and modification times. Every step opens relative to its parent's descriptor with
``O_NOFOLLOW``, so a container swapping a directory for a symlink mid-copy cannot lead the
copy out of the source."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from drivers.paths import O_DIR
from drivers.syncfs import sync_filesystem
from drivers.types import CloneProgress

FICLONE = 0x40049409  # _IOW(0x94, 9, int): share the source's extents (btrfs, XFS reflink)
COPY_CHUNK = 64 * 1024 * 1024
COPY_WORKERS = 4


def copy_file_data(src_fd: int, dst_fd: int, size: int) -> bool:
    """Returns True when the data was shared by a reflink rather than copied."""
    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
        return True
    except OSError as exc:
        if exc.errno not in {errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY}:
            raise
    copied = 0
    while copied < size:
        try:
            step = os.copy_file_range(src_fd, dst_fd, min(COPY_CHUNK, size - copied))
        except OSError as exc:
            if exc.errno not in {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}:
                raise
            step = _copy_by_reading(src_fd, dst_fd)
        if step == 0:
            break  # the source shrank meanwhile: copy what is there
        copied += step
    return False


def _copy_by_reading(src_fd: int, dst_fd: int) -> int:
    data = os.read(src_fd, 1024 * 1024)
    view = memoryview(data)
    while view:
        view = view[os.write(dst_fd, view) :]
    return len(data)


def copy_tree(
    source_root: Path,
    target_root: Path,
    progress: CloneProgress,
    *,
    dir_mode: int = 0o755,
    skip: frozenset[str] = frozenset(),
) -> None:
    """Copies the contents of ``source_root`` into ``target_root`` (which must not exist and
    is private to the proxy until the clone is complete). ``skip``: names at the top that are
    the source driver's own (its in-vfolder staging), not the user's."""
    target_root.mkdir(dir_mode)
    src = os.open(source_root, O_DIR)
    dst = os.open(target_root, O_DIR)
    directories: list[tuple[str, os.stat_result]] = []
    try:
        with ThreadPoolExecutor(COPY_WORKERS, thread_name_prefix="clone") as pool:
            _copy_dir(src, dst, "", progress, pool, directories, skip=skip)
        # Modes and times of directories last, children before parents: writing inside a
        # directory changes its mtime.
        for relative, st in directories:
            target = target_root / relative
            target.chmod(stat.S_IMODE(st.st_mode))
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        top = os.fstat(src)
        os.fchmod(dst, stat.S_IMODE(top.st_mode))
        os.utime(dst, ns=(top.st_atime_ns, top.st_mtime_ns))
        # Durable before the clone is moved into place and declared ready: one flush of the
        # target's filesystem costs far less than an fsync per file.
        sync_filesystem(dst)
    finally:
        os.close(src)
        os.close(dst)


def _copy_dir(
    src: int,
    dst: int,
    where: str,
    progress: CloneProgress,
    pool: ThreadPoolExecutor,
    directories: list[tuple[str, os.stat_result]],
    *,
    skip: frozenset[str] = frozenset(),
) -> None:
    """One directory: its files in parallel, its subdirectories depth first."""
    with os.scandir(src) as entries:
        listed = [(e.name, e.stat(follow_symlinks=False)) for e in entries if e.name not in skip]
    copies: list[Future[None]] = []
    try:
        for name, st in listed:
            relative = f"{where}/{name}" if where else name
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(name, 0o700, dir_fd=dst)
                child_src = os.open(name, O_DIR, dir_fd=src)
                try:
                    child_dst = os.open(name, O_DIR, dir_fd=dst)
                    try:
                        _copy_dir(child_src, child_dst, relative, progress, pool, directories)
                    finally:
                        os.close(child_dst)
                finally:
                    os.close(child_src)
                directories.append((relative, st))
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
                os.utime(
                    name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False
                )
            elif stat.S_ISREG(st.st_mode):
                copies.append(pool.submit(_copy_file, src, dst, name, st, progress))
            else:
                progress.skipped.append(relative)
    finally:
        for copy in copies:  # the descriptors stay open until every copy using them is done
            copy.result()


def _copy_file(src: int, dst: int, name: str, st: os.stat_result, progress: CloneProgress) -> None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    source = os.open(name, flags, dir_fd=src)
    try:
        if not stat.S_ISREG(os.fstat(source).st_mode):
            progress.skipped.append(name)  # replaced by something else since the listing
            return
        target = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=dst
        )
        try:
            reflinked = copy_file_data(source, target, st.st_size)
            os.fchmod(target, stat.S_IMODE(st.st_mode))
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(target)
    finally:
        os.close(source)
    progress.add(st.st_size, reflinked=reflinked)


def remove_tree(path: Path) -> None:
    """Best effort; shutil.rmtree walks by descriptor and never follows symlinks."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
