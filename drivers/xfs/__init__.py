"""The ``xfs`` backend: the POSIX parts, uploads staged inside each vfolder's project, and
XFS project quotas for the quota and usage capabilities (drivers/xfs/quota.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drivers.commands import DEFAULT_TIMEOUT_SECONDS, CommandRunner, SubprocessRunner
from drivers.driver import Driver, PlainDirectories
from drivers.fsops import PosixFileOps
from drivers.posix import OPTIONS as POSIX_OPTIONS
from drivers.posix import PosixOptions
from drivers.registry import Backend
from drivers.staging import VFolderStaging
from drivers.xfs.quota import (
    PROJECT_ID_FIRST,
    PROJECT_ID_LAST,
    ProjectQuota,
    XfsProjectQuota,
    hard_limit_argument,
    parse_lsproj,
    parse_project_report,
    project_id_candidates,
    project_quota_enforced,
)

__all__ = [
    "PROJECT_ID_FIRST",
    "PROJECT_ID_LAST",
    "ProjectQuota",
    "XfsProjectQuota",
    "hard_limit_argument",
    "parse_lsproj",
    "parse_project_report",
    "project_id_candidates",
    "project_quota_enforced",
    "xfs_driver",
]

OPTIONS = POSIX_OPTIONS | {"xfs_quota", "xfs_io", "mount_point", "command_timeout"}


def xfs_driver(
    root: Path, *, options: dict[str, Any] | None = None, runner: CommandRunner | None = None
) -> Driver:
    opts = options or {}
    posix = PosixOptions.parse(root, opts)
    timeout = float(opts.get("command_timeout", DEFAULT_TIMEOUT_SECONDS))
    quota = XfsProjectQuota(
        posix.layout,
        mount_point=Path(str(opts.get("mount_point", posix.layout.root))).resolve(),
        runner=runner if runner is not None else SubprocessRunner(timeout=timeout),
        xfs_quota=str(opts.get("xfs_quota", "xfs_quota")),
        xfs_io=str(opts.get("xfs_io", "xfs_io")),
    )
    return Driver(
        backend="xfs",
        layout=posix.layout,
        # XFS refuses a rename across projects (EXDEV): uploads are staged inside the
        # vfolder's own project, so committing one is a rename within it.
        files=PosixFileOps(posix.layout, staging=VFolderStaging(posix.layout)),
        directories=PlainDirectories(posix.dir_mode),
        quota=quota,
        usage=quota,
        mount_options=posix.mount_options,
    )


BACKEND = Backend(name="xfs", build=xfs_driver, options=OPTIONS)
