"""The ``xfs`` backend: the POSIX parts, uploads staged inside each vfolder's project, and
XFS project quotas for the quota and usage capabilities (drivers/xfs/quota.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from drivers.commands import DEFAULT_TIMEOUT_SECONDS, CommandRunner, SubprocessRunner
from drivers.driver import Driver, PlainDirectories
from drivers.fsops import PosixFileOps
from drivers.options import PosixOptions
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


class XfsOptions(PosixOptions):
    xfs_quota: str = "xfs_quota"
    xfs_io: str = "xfs_io"
    mount_point: Path | None = Field(
        default=None, description="The XFS mount point (default: the volume's path)."
    )
    command_timeout: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0)


def xfs_driver(
    root: Path,
    *,
    options: Mapping[str, Any] | XfsOptions | None = None,
    runner: CommandRunner | None = None,
) -> Driver:
    opts = XfsOptions.model_validate(options or {})
    layout = opts.build_layout(root)
    quota = XfsProjectQuota(
        layout,
        mount_point=(opts.mount_point or layout.root).resolve(),
        runner=runner if runner is not None else SubprocessRunner(timeout=opts.command_timeout),
        xfs_quota=opts.xfs_quota,
        xfs_io=opts.xfs_io,
    )
    return Driver(
        backend="xfs",
        layout=layout,
        # XFS refuses a rename across projects (EXDEV): uploads are staged inside the
        # vfolder's own project, so committing one is a rename within it.
        files=PosixFileOps(layout, staging=VFolderStaging(layout)),
        directories=PlainDirectories(opts.dir_mode),
        quota=quota,
        usage=quota,
        mount_options=opts.mount_options,
    )


BACKEND = Backend(name="xfs", build=xfs_driver, options=XfsOptions)
