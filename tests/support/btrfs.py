"""A real btrfs for the tests: a sparse image, loop-mounted once per test session (root and
loop devices are needed; the tests that need it are skipped, saying why, where they are not
allowed)."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

IMAGE_BYTES = 1024 * 1024 * 1024  # sparse: only what the tests write takes disk space

_mount: Path | None = None
_refused: str | None = None


def _set_up() -> Path:
    if os.geteuid() != 0:
        raise RuntimeError("loop mounts need root")
    for tool in ("mkfs.btrfs", "btrfs", "mount", "umount"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (Debian: btrfs-progs)")
    base = Path(tempfile.mkdtemp(prefix="sp-btrfs-"))
    image, mount = base / "btrfs.img", base / "mnt"
    mount.mkdir()
    with image.open("wb") as out:
        out.truncate(IMAGE_BYTES)
    for argv in (
        ["mkfs.btrfs", "-q", str(image)],
        ["mount", "-o", "loop", str(image), str(mount)],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(base, ignore_errors=True)
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stderr.strip()}")

    def tear_down() -> None:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)

    atexit.register(tear_down)
    return mount


def _ensure() -> None:
    global _mount, _refused
    if _mount is None and _refused is None:
        try:
            _mount = _set_up()
        except (RuntimeError, OSError) as exc:
            _refused = str(exc)


def btrfs_status() -> str:
    """For the test log's header: which way the btrfs tests go."""
    _ensure()
    if _mount is not None:
        return f"btrfs: tests run on a loop-mounted image at {_mount}"
    return f"btrfs: tests SKIPPED, no loop-mounted btrfs here ({_refused})"


def btrfs_scratch() -> Path:
    """A fresh directory on the session's btrfs, or a skip that says why there is none."""
    _ensure()
    if _mount is None:
        pytest.skip(f"btrfs tests skipped: no loop-mounted btrfs here ({_refused})")
    scratch = _mount / uuid.uuid4().hex
    scratch.mkdir()
    return scratch
