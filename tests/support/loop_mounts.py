"""Real btrfs and XFS filesystems for the tests: a sparse image each, loop-mounted once per
test session. Root and loop devices are needed; where they are not allowed (or the tools are
missing) the tests that need them are skipped, saying why, and the test log's header says
which way it went."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

IMAGE_BYTES = 1024 * 1024 * 1024  # sparse: only what the tests write takes disk space


@dataclass(frozen=True)
class Filesystem:
    name: str
    mkfs: list[str]
    tools: tuple[str, ...]
    package: str


FILESYSTEMS = {
    "btrfs": Filesystem("btrfs", ["mkfs.btrfs", "-q"], ("mkfs.btrfs", "btrfs"), "btrfs-progs"),
    # reflink=1 is the default of current xfsprogs; said anyway, it is what the tests need.
    "xfs": Filesystem("xfs", ["mkfs.xfs", "-q", "-m", "reflink=1"], ("mkfs.xfs",), "xfsprogs"),
}

_mounts: dict[str, Path | str] = {}  # a mount point, or why there is none


def _set_up(fs: Filesystem) -> Path:
    if os.geteuid() != 0:
        raise RuntimeError("loop mounts need root")
    for tool in (*fs.tools, "mount", "umount"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (Debian: {fs.package})")
    base = Path(tempfile.mkdtemp(prefix=f"sp-{fs.name}-"))
    image, mount = base / f"{fs.name}.img", base / "mnt"
    mount.mkdir()
    with image.open("wb") as out:
        out.truncate(IMAGE_BYTES)
    for argv in ([*fs.mkfs, str(image)], ["mount", "-o", "loop", str(image), str(mount)]):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(base, ignore_errors=True)
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stderr.strip()}")

    def tear_down() -> None:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)

    atexit.register(tear_down)
    return mount


def _mount(name: str) -> Path | str:
    if name not in _mounts:
        try:
            _mounts[name] = _set_up(FILESYSTEMS[name])
        except (RuntimeError, OSError) as exc:
            _mounts[name] = str(exc)
    return _mounts[name]


def loop_mount_status() -> list[str]:
    """For the test log's header: which way the btrfs and XFS tests go."""
    lines = []
    for name in FILESYSTEMS:
        mount = _mount(name)
        if isinstance(mount, Path):
            lines.append(f"{name}: tests run on a loop-mounted image at {mount}")
        else:
            lines.append(f"{name}: tests SKIPPED, no loop-mounted {name} here ({mount})")
    return lines


def scratch_on(name: str) -> Path:
    """A fresh directory on the session's filesystem ``name``, or a skip that says why."""
    mount = _mount(name)
    if not isinstance(mount, Path):
        pytest.skip(f"{name} tests skipped: no loop-mounted {name} here ({mount})")
    scratch = mount / uuid.uuid4().hex
    scratch.mkdir()
    return scratch


def btrfs_scratch() -> Path:
    return scratch_on("btrfs")
