"""The ``weka`` backend: WekaFS, mounted natively (``wekafs``) at the volume's path or above
it, managed through the Weka REST API v2 (drivers/weka/client.py).

A vfolder is a plain directory with a Weka directory quota on it (keyed by the directory's
inode), which gives the quota and fast-usage capabilities; snapshots are Weka filesystem
snapshots, one per vfolder snapshot, browsed and restored through the mount's
``.snapshots`` directory (drivers/weka/parts.py). No fast clone: a clone is the generic copy.

Weka refuses to move a file into, out of or between quota directories (EXDEV), so uploads
are staged inside the vfolder (``VFolderStaging``) and committing one is a rename within its
quota directory."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import httpx
from pydantic import Field, model_validator

from drivers.driver import Driver, PlainDirectories
from drivers.fsops import PosixFileOps
from drivers.options import read_secret
from drivers.registry import Backend
from drivers.rest.client import VendorClient
from drivers.rest.health import RestManagement
from drivers.rest.options import RestApiOptions
from drivers.staging import VFolderStaging
from drivers.weka.client import VENDOR, WekaApi, WekaAuth, weka_message
from drivers.weka.parts import WekaFilesystem, WekaQuota, WekaSnapshots

__all__ = ["WekaApi", "WekaAuth", "WekaOptions", "WekaQuota", "WekaSnapshots", "weka_driver"]


class WekaOptions(RestApiOptions):
    username: str = Field(description="The Weka user the proxy logs in as.")
    org: str = Field(default="Root", description="The Weka organization of that user.")
    password_env: str | None = Field(
        default=None, description="Environment variable holding the user's password."
    )
    password_file: Path | None = Field(
        default=None, description="File holding the user's password (instead of password_env)."
    )
    filesystem: str | None = Field(
        default=None,
        description="Name of the Weka filesystem the volume is on, resolved to its uid at start "
        "(GET /api/v2/fileSystems). Give this or filesystem_uid.",
    )
    filesystem_uid: str | None = Field(
        default=None, description="The uid of that filesystem, given directly instead."
    )
    mount_point: Path | None = Field(
        default=None,
        description="Where that filesystem is mounted here (its root); the volume's path is it "
        "or a directory under it. Maps a vfolder to its place in a snapshot: "
        "<mount_point>/<snapshots_dir>/<access point>/<vfolder path under mount_point>. "
        "Default: the volume's path.",
    )
    snapshots_dir: str = Field(
        default=".snapshots",
        pattern=r"^[^/\x00]+$",
        description="The directory at the filesystem's root where Weka shows snapshots.",
    )

    @model_validator(mode="after")
    def _one_filesystem(self) -> Self:
        if (self.filesystem is None) == (self.filesystem_uid is None):
            raise ValueError("give exactly one of filesystem or filesystem_uid")
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env or password_file")
        return self


def weka_driver(
    root: Path,
    *,
    options: Mapping[str, Any] | WekaOptions | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Driver:
    opts = WekaOptions.model_validate(options or {})
    layout = opts.build_layout(root)
    auth = WekaAuth(
        endpoint=str(opts.endpoint),
        username=opts.username,
        password=read_secret("password", env=opts.password_env, file=opts.password_file),
        org=opts.org,
    )
    client = VendorClient(
        vendor=VENDOR, options=opts, auth=auth, read_message=weka_message, transport=transport
    )
    api = WekaApi(client)
    filesystem = WekaFilesystem(
        api,
        name=opts.filesystem,
        uid=opts.filesystem_uid,
        mount_point=(opts.mount_point or layout.root).resolve(),
    )
    staging = VFolderStaging(layout)
    quota = WekaQuota(layout, filesystem)
    return Driver(
        backend="weka",
        layout=layout,
        files=PosixFileOps(layout, staging=staging),
        directories=PlainDirectories(opts.dir_mode),
        quota=quota,
        usage=quota,
        snapshots=WekaSnapshots(
            layout, filesystem, snapshots_dir=opts.snapshots_dir, reserved=staging.reserved
        ),
        management=RestManagement(client, api.cluster, cache_seconds=opts.health_cache_seconds),
        mount_options=opts.mount_options,
    )


BACKEND = Backend(name="weka", build=weka_driver, options=WekaOptions)
