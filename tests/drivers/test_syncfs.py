"""The clone's flush: one filesystem, through syncfs(2), with its errors reported."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from drivers.syncfs import _libc_syncfs, sync_filesystem


@pytest.mark.skipif(sys.platform != "linux", reason="syncfs(2) is Linux's")
def test_syncfs_is_used_on_linux() -> None:
    assert _libc_syncfs() is not None


def test_a_filesystem_is_flushed_through_a_descriptor_of_it(tmp_path: Path) -> None:
    (tmp_path / "dirty").write_bytes(os.urandom(1 << 20))
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        sync_filesystem(fd)
    finally:
        os.close(fd)


def test_a_bad_descriptor_is_an_error_not_a_silent_success() -> None:
    with pytest.raises(OSError) as refused:
        sync_filesystem(-1)
    assert refused.value.errno == errno.EBADF
