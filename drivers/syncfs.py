"""Flushing one filesystem to disk rather than every filesystem of the host."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable


@functools.cache
def _libc_syncfs() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    function = getattr(ctypes.CDLL(name, use_errno=True), "syncfs", None)
    if function is None:
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def sync_filesystem(fd: int) -> None:
    """Writes back the filesystem that holds ``fd`` (Linux ``syncfs``), so a clone's flush
    waits for its own volume only, not for every dirty page on the host. Where ``syncfs``
    does not exist, the whole host is flushed."""
    syncfs = _libc_syncfs()
    if syncfs is None:
        os.sync()
        return
    if syncfs(fd) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
