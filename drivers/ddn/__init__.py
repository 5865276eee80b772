"""The ``ddn`` backend (Backend.AI: ``exascaler``): a DDN EXAScaler / Lustre filesystem mounted
by the native Lustre client. The POSIX parts, uploads staged inside each vfolder's project,
and Lustre project quotas for the quota and usage capabilities (drivers/ddn/quota.py), set
through the ``lfs`` tool. No snapshots (Lustre's are server-side ``lctl snapshot_*``) and no
fast clone: the services layer's generic copy does clones."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import Field, model_validator

from drivers.commands import DEFAULT_TIMEOUT_SECONDS, CommandRunner, SubprocessRunner
from drivers.ddn.quota import (
    PROJECT_ID_FIRST,
    PROJECT_ID_LAST,
    LustreProjectQuota,
    LustreQuota,
    block_limit_argument,
    parse_project_listing,
    parse_quota,
    project_id_candidates,
)
from drivers.driver import Driver, PlainDirectories
from drivers.fsops import PosixFileOps
from drivers.options import PosixOptions
from drivers.registry import Backend
from drivers.staging import VFolderStaging

__all__ = [
    "PROJECT_ID_FIRST",
    "PROJECT_ID_LAST",
    "DdnOptions",
    "LustreProjectQuota",
    "LustreQuota",
    "block_limit_argument",
    "ddn_driver",
    "parse_project_listing",
    "parse_quota",
    "project_id_candidates",
]


class DdnOptions(PosixOptions):
    lfs: str = Field(default="lfs", description="The lfs binary (default: found on PATH).")
    mount_point: Path | None = Field(
        default=None,
        description="Where the Lustre filesystem is mounted; lfs quota and setquota are run "
        "on it (default: the volume's path).",
    )
    command_timeout: float = Field(
        default=DEFAULT_TIMEOUT_SECONDS,
        gt=0,
        description="Seconds one lfs run may take; tagging a large vfolder walks its tree.",
    )
    project_id_first: int = Field(
        default=PROJECT_ID_FIRST,
        ge=1,
        le=PROJECT_ID_LAST,
        description="The lowest Lustre project id the proxy hands out to vfolders.",
    )
    project_id_last: int = Field(
        default=PROJECT_ID_LAST,
        ge=1,
        le=PROJECT_ID_LAST,
        description="The highest Lustre project id the proxy hands out to vfolders.",
    )

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.project_id_first > self.project_id_last:
            raise ValueError("project_id_first must not be above project_id_last")
        return self


def ddn_driver(
    root: Path,
    *,
    options: Mapping[str, Any] | DdnOptions | None = None,
    runner: CommandRunner | None = None,
) -> Driver:
    opts = DdnOptions.model_validate(options or {})
    layout = opts.build_layout(root)
    quota = LustreProjectQuota(
        layout,
        mount_point=(opts.mount_point or layout.root).resolve(),
        runner=runner if runner is not None else SubprocessRunner(timeout=opts.command_timeout),
        lfs=opts.lfs,
        project_id_first=opts.project_id_first,
        project_id_last=opts.project_id_last,
    )
    return Driver(
        backend="ddn",
        layout=layout,
        # Lustre refuses a rename across projects with inherit flags (EXDEV), like XFS:
        # uploads are staged inside the vfolder's own project.
        files=PosixFileOps(layout, staging=VFolderStaging(layout)),
        directories=PlainDirectories(opts.dir_mode),
        quota=quota,
        usage=quota,
        mount_options=opts.mount_options,
    )


BACKEND = Backend(name="ddn", build=ddn_driver, options=DdnOptions, aliases=("exascaler",))
