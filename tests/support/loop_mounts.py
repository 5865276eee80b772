"""Real btrfs and XFS filesystems for the tests: a sparse image each, loop-mounted once per
test session. Root and loop devices are needed; where they are not allowed (or the tools are
missing) the tests that need them are skipped, saying why, and the test log's header says
which way it went.

XFS project quota is probed apart (``xfs_project_quota``): a kernel built without
``CONFIG_XFS_QUOTA`` mounts XFS but refuses ``prjquota``, and then the XFS quota tests run on
recorded ``xfs_quota`` output only. The header says which, with the kernel's own words."""

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
PROBE_BYTES = 320 * 1024 * 1024  # just above the smallest XFS mkfs.xfs makes (300 MiB)


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
_prjquota: tuple[Path | None, str] | None = None  # see xfs_project_quota


def _set_up(fs: Filesystem, *, options: str = "loop", size: int = IMAGE_BYTES) -> Path:
    if os.geteuid() != 0:
        raise RuntimeError("loop mounts need root")
    for tool in (*fs.tools, "mount", "umount"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (Debian: {fs.package})")
    base = Path(tempfile.mkdtemp(prefix=f"sp-{fs.name}-"))
    image, mount = base / f"{fs.name}.img", base / "mnt"
    mount.mkdir()
    with image.open("wb") as out:
        out.truncate(size)
    for argv in ([*fs.mkfs, str(image)], ["mount", "-o", options, str(image), str(mount)]):
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


def _kernel_says(*about: str) -> str | None:
    """The kernel's last log line mentioning all of ``about`` (``XFS (loop3): quota support
    not available in this kernel.``), where the log can be read."""
    try:
        done = subprocess.run(["dmesg"], capture_output=True, text=True, check=False, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line for line in done.stdout.splitlines() if all(a in line for a in about)]
    return lines[-1].split("] ", 1)[-1].strip() if lines else None


def xfs_project_quota() -> tuple[Path | None, str]:
    """Whether this kernel has XFS project quota: an XFS image loop-mounted with
    ``prjquota``, tried once per test session (well under a second). The mount point, kept
    for the session, or None; and a sentence saying which, for the log."""
    global _prjquota
    if _prjquota is None:
        _prjquota = _probe_prjquota()
    return _prjquota


def _probe_prjquota() -> tuple[Path | None, str]:
    recorded = "the XFS quota tests run on recorded xfs_quota output only"
    try:
        mount = _set_up(FILESYSTEMS["xfs"], options="loop,prjquota", size=PROBE_BYTES)
    except (RuntimeError, OSError) as exc:
        if not str(exc).startswith("mount "):  # no root, no mkfs.xfs: nothing was tried
            return None, f"xfs project quota: not probed here ({exc}); {recorded}"
        said = _kernel_says("XFS (", "quota") or str(exc)
        return None, (
            "xfs project quota: NOT supported by this kernel (mount -o loop,prjquota of an "
            f"XFS image failed; kernel: {said}); {recorded}"
        )
    return mount, (
        f"xfs project quota: supported by this kernel (loop-mounted with prjquota at {mount});"
        " a real quota test runs besides the recorded-output ones"
    )


def loop_mount_status() -> list[str]:
    """For the test log's header: which way the btrfs and XFS tests go."""
    lines = []
    for name in FILESYSTEMS:
        mount = _mount(name)
        if isinstance(mount, Path):
            lines.append(f"{name}: tests run on a loop-mounted image at {mount}")
        else:
            lines.append(f"{name}: tests SKIPPED, no loop-mounted {name} here ({mount})")
    lines.append(xfs_project_quota()[1])
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
