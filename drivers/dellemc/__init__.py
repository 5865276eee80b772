"""The ``dellemc`` backend (alias ``dellemc-onefs``, Backend.AI's name): Dell PowerScale /
OneFS over an NFS mount of an ``/ifs`` export, managed through the OneFS Platform API.

A vfolder is a directory on the mount; the volume's ``ifs_path`` option says which /ifs
path the mount's root is, so the vfolder at ``<path>/<rel>`` is ``<ifs_path>/<rel>`` for the
cluster (drivers/dellemc/parts.py):

- quota: a directory quota on that path (hard threshold on ``fslogicalsize``, snapshots not
  counted), found by its path, never by a cached id;
- fast usage: that quota's ``usage.fslogical``;
- snapshots: OneFS snapshots of that path, browsed and restored through the mount's
  ``.snapshot`` directory;
- no fast clone (PAPI has no directory clone): a clone is the generic file copy.

Uploads are staged inside the vfolder (``VFolderStaging``): a commit is a rename within the
directory quota. Authentication: HTTP Basic on every call (default), or a OneFS session
(``auth = "session"``). The health probe is ``GET /platform/1/cluster/identity``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import httpx
from pydantic import Field, field_validator

from drivers.dellemc.client import (
    VENDOR,
    OneFsApi,
    OneFsSessionAuth,
    as_int,
    onefs_message,
)
from drivers.dellemc.parts import SNAPSHOT_NAME, IfsPaths, OneFsQuota, OneFsSnapshots
from drivers.driver import Driver, PlainDirectories
from drivers.fsops import PosixFileOps
from drivers.options import read_secret
from drivers.registry import Backend
from drivers.rest.client import VendorClient
from drivers.rest.health import RestManagement
from drivers.rest.options import RestApiOptions
from drivers.staging import VFolderStaging

__all__ = [
    "SNAPSHOT_NAME",
    "IfsPaths",
    "OneFsApi",
    "OneFsOptions",
    "OneFsQuota",
    "OneFsSessionAuth",
    "OneFsSnapshots",
    "as_int",
    "dellemc_driver",
    "onefs_message",
]

_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")


class OneFsOptions(RestApiOptions):
    """The ``dellemc`` volume options, besides the POSIX and REST ones (``endpoint`` is the
    PAPI base, e.g. ``https://onefs1.example:8080``)."""

    username: str = Field(min_length=1, description="The OneFS user the proxy acts as.")
    password_env: str | None = Field(
        default=None, description="Environment variable holding the user's password."
    )
    password_file: Path | None = Field(
        default=None, description="File holding the user's password (one line)."
    )
    auth: Literal["basic", "session"] = Field(
        default="basic",
        description="`basic`: HTTP Basic on every call; `session`: one OneFS session "
        "(isisessid cookie + X-CSRF-Token), logged in again when it expires.",
    )
    ifs_path: str = Field(
        description="The OneFS path of the export the volume's `path` mounts, e.g. "
        "`/ifs/data/bai`: the vfolder at `<path>/<rel>` is `<ifs_path>/<rel>` on the "
        "cluster, where its quota and snapshots are made."
    )
    api_version: int = Field(
        default=12, ge=1, le=99, description="PAPI version of the quota calls (OneFS 9.x: 12+)."
    )
    snapshot_prefix: str = Field(
        default="sp-",
        description="Prefix of the OneFS snapshot names this volume makes "
        "(`<prefix><vfolder hex>-<name>`; OneFS names are cluster-wide).",
    )
    snapshot_dir: str = Field(
        default=".snapshot",
        description="The name of OneFS's snapshot directory as the mount shows it.",
    )

    @field_validator("ifs_path")
    @classmethod
    def _ifs(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not path.is_absolute() or path.parts[:2] != ("/", "ifs") or ".." in path.parts:
            raise ValueError("must be an absolute path under /ifs, e.g. /ifs/data/bai")
        return str(path)

    @field_validator("snapshot_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREFIX.match(value):
            raise ValueError("letters, digits, '.', '_' and '-' only (up to 32)")
        return value

    @field_validator("snapshot_dir")
    @classmethod
    def _snapshot_dir(cls, value: str) -> str:
        if not value or "/" in value or value in (".", ".."):
            raise ValueError("must be one directory name, e.g. .snapshot")
        return value


def dellemc_driver(
    root: Path,
    *,
    options: Mapping[str, Any] | OneFsOptions | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Driver:
    opts = OneFsOptions.model_validate(options or {})
    password = read_secret("password", env=opts.password_env, file=opts.password_file)
    layout = opts.build_layout(root)
    endpoint = str(opts.endpoint).rstrip("/")
    auth: httpx.Auth
    if opts.auth == "session":
        auth = OneFsSessionAuth(endpoint=endpoint, username=opts.username, password=password)
    else:
        auth = httpx.BasicAuth(opts.username, password.get_secret_value())
    client = VendorClient(
        vendor=VENDOR,
        options=opts,
        auth=auth,
        read_message=onefs_message,
        transport=transport,
    )
    api = OneFsApi(client, api_version=opts.api_version)
    paths = IfsPaths(layout, opts.ifs_path)
    quota = OneFsQuota(api, paths)
    return Driver(
        backend="dellemc",
        layout=layout,
        # A directory quota is a tree: uploads staged inside it commit by a rename within it.
        files=PosixFileOps(layout, staging=VFolderStaging(layout)),
        directories=PlainDirectories(opts.dir_mode),
        quota=quota,
        usage=quota,
        snapshots=OneFsSnapshots(
            api, paths, prefix=opts.snapshot_prefix, snapshot_dir=opts.snapshot_dir
        ),
        management=RestManagement(client, api.identity, cache_seconds=opts.health_cache_seconds),
        mount_options=opts.mount_options,
    )


BACKEND = Backend(
    name="dellemc", build=dellemc_driver, options=OneFsOptions, aliases=("dellemc-onefs",)
)
