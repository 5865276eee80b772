"""The ``btrfs`` backend: a subvolume per vfolder, and every optional capability done by the
filesystem (drivers/btrfs/parts.py). Options, besides the POSIX ones: ``btrfs`` (the binary)
and ``command_timeout`` (seconds).

Uploads are staged in the volume's area, which is outside every subvolume: a commit there
shares the data into the vfolder (a reflink) instead of renaming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drivers.btrfs.parts import (
    SNAPSHOTS_DIR,
    BtrfsClones,
    BtrfsQgroups,
    BtrfsSnapshots,
    BtrfsSubvolumes,
    BtrfsTools,
    parse_qgroup_exclusive,
    parse_qgroup_show,
)
from drivers.commands import DEFAULT_TIMEOUT_SECONDS, CommandRunner, SubprocessRunner
from drivers.driver import Driver
from drivers.fsops import PosixFileOps
from drivers.posix import OPTIONS as POSIX_OPTIONS
from drivers.posix import PosixOptions
from drivers.registry import Backend

__all__ = [
    "SNAPSHOTS_DIR",
    "BtrfsClones",
    "BtrfsQgroups",
    "BtrfsSnapshots",
    "BtrfsSubvolumes",
    "BtrfsTools",
    "btrfs_driver",
    "parse_qgroup_exclusive",
    "parse_qgroup_show",
]

OPTIONS = POSIX_OPTIONS | {"btrfs", "command_timeout"}


def btrfs_driver(
    root: Path, *, options: dict[str, Any] | None = None, runner: CommandRunner | None = None
) -> Driver:
    opts = options or {}
    posix = PosixOptions.parse(root, opts)
    timeout = float(opts.get("command_timeout", DEFAULT_TIMEOUT_SECONDS))
    tools = BtrfsTools(
        runner if runner is not None else SubprocessRunner(timeout=timeout),
        binary=str(opts.get("btrfs", "btrfs")),
    )
    qgroups = BtrfsQgroups(posix.layout, tools)
    return Driver(
        backend="btrfs",
        layout=posix.layout,
        files=PosixFileOps(posix.layout),
        directories=BtrfsSubvolumes(tools, dir_mode=posix.dir_mode),
        quota=qgroups,
        usage=qgroups,
        snapshots=BtrfsSnapshots(posix.layout, tools, qgroups),
        clone=BtrfsClones(posix.layout, tools),
        mount_options=posix.mount_options,
    )


BACKEND = Backend(name="btrfs", build=btrfs_driver, options=OPTIONS)
