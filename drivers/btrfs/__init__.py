"""The ``btrfs`` backend: a subvolume per vfolder, and every optional capability done by the
filesystem (drivers/btrfs/parts.py). Options, besides the POSIX ones: ``btrfs`` (the binary)
and ``command_timeout`` (seconds).

Uploads are staged in the volume's area, which is outside every subvolume: a commit there
shares the data into the vfolder (a reflink) instead of renaming it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

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
from drivers.options import PosixOptions
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


class BtrfsOptions(PosixOptions):
    btrfs: str = "btrfs"
    command_timeout: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0)


def btrfs_driver(
    root: Path,
    *,
    options: Mapping[str, Any] | BtrfsOptions | None = None,
    runner: CommandRunner | None = None,
) -> Driver:
    opts = BtrfsOptions.model_validate(options or {})
    layout = opts.build_layout(root)
    tools = BtrfsTools(
        runner if runner is not None else SubprocessRunner(timeout=opts.command_timeout),
        binary=opts.btrfs,
    )
    qgroups = BtrfsQgroups(layout, tools)
    return Driver(
        backend="btrfs",
        layout=layout,
        files=PosixFileOps(layout),
        directories=BtrfsSubvolumes(tools, dir_mode=opts.dir_mode),
        quota=qgroups,
        usage=qgroups,
        snapshots=BtrfsSnapshots(layout, tools, qgroups),
        clone=BtrfsClones(layout, tools),
        mount_options=opts.mount_options,
    )


BACKEND = Backend(name="btrfs", build=btrfs_driver, options=BtrfsOptions)
