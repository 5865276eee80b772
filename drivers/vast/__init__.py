"""The ``vast`` backend: a VAST Data cluster mounted over NFS, managed through its VMS REST
API (drivers/vast/api.py).

Data moves over the mount through the shared POSIX file operations; uploads are staged
inside each vfolder (its quota boundary), so committing one is a rename within it. The VMS
API does the rest (drivers/vast/parts.py): a quota object per vfolder directory (quota,
fast usage), snapshots of that directory (browsed through the mount's ``.snapshot``
directory, restored by copying back), and the health probe (``GET /api/<v>/clusters/``).
No fast clone: VAST clones come from snapshots through global-snapshot clones, whose API is
unverified here; a clone is a copy over the mount."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Self

import httpx
from pydantic import Field, field_validator, model_validator

from drivers.driver import Driver, PlainDirectories
from drivers.fsops import PosixFileOps
from drivers.options import read_secret
from drivers.registry import Backend
from drivers.rest.client import VendorClient
from drivers.rest.health import RestManagement
from drivers.rest.options import RestApiOptions
from drivers.staging import VFolderStaging
from drivers.vast.api import VastApi, VastApiTokenAuth, VastTokenAuth, vast_message
from drivers.vast.parts import (
    SNAPSHOT_DIR,
    StoragePaths,
    VastQuota,
    VastSnapshotLayout,
    VastSnapshots,
)

__all__ = [
    "SNAPSHOT_DIR",
    "StoragePaths",
    "VastApi",
    "VastOptions",
    "VastQuota",
    "VastSnapshotLayout",
    "VastSnapshots",
    "vast_driver",
]

API_VERSION = re.compile(r"^(v[0-9]+|latest)$")


class VastOptions(RestApiOptions):
    storage_base_path: str = Field(
        description="The cluster's path of the volume's mount root: the directory the NFS "
        "view exports, as VMS names it (e.g. `/proxy` when `vast:/proxy` is mounted at the "
        "volume's `path`). A vfolder at `<path>/ab/cd/<hex>` is `<storage_base_path>/ab/cd/"
        "<hex>` in the quota and snapshot objects."
    )
    api_version: str = Field(
        default="v2", description="The VMS API version in the URL: `v1`, `v2`… or `latest`."
    )
    username: str | None = Field(default=None, description="VMS user, with a password.")
    password_env: str | None = Field(default=None, description="Env variable of the password.")
    password_file: Path | None = Field(default=None, description="File holding the password.")
    api_token_env: str | None = Field(
        default=None, description="Env variable of a VMS API token (instead of a user)."
    )
    api_token_file: Path | None = Field(default=None, description="File holding an API token.")
    tenant: str | None = Field(
        default=None, description="Sent as `X-Tenant-Name` on every call (multi-tenant VMS)."
    )
    snapshot_dir: str = Field(
        default=SNAPSHOT_DIR,
        description="The directory through which the mount shows a directory's snapshots.",
    )

    @field_validator("storage_base_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not path.is_absolute() or ".." in path.parts:
            raise ValueError("must be an absolute path on the cluster, e.g. '/proxy'")
        return str(path)

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not API_VERSION.match(value):
            raise ValueError("must be 'v<number>' or 'latest'")
        return value

    @field_validator("snapshot_dir")
    @classmethod
    def _one_name(cls, value: str) -> str:
        if not value or value in (".", "..") or "/" in value or "\0" in value:
            raise ValueError("must be one directory name, such as '.snapshot'")
        return value

    @model_validator(mode="after")
    def _one_way_in(self) -> Self:
        password = self.password_env is not None or self.password_file is not None
        token = self.api_token_env is not None or self.api_token_file is not None
        if password == token:
            raise ValueError(
                "give either username with password_env/password_file, or "
                "api_token_env/api_token_file"
            )
        if password and not self.username:
            raise ValueError("username is needed with a password")
        if token and self.username:
            raise ValueError("username goes with a password, not with an API token")
        return self


def vast_driver(
    root: Path,
    *,
    options: Mapping[str, Any] | VastOptions | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Driver:
    opts = VastOptions.model_validate(options or {})
    layout = opts.build_layout(root)
    prefix = f"/api/{opts.api_version}"
    auth: httpx.Auth
    if opts.username is not None:
        password = read_secret("password", env=opts.password_env, file=opts.password_file)
        # The auth flow's own requests are sent as they are: absolute URLs.
        auth = VastTokenAuth(
            prefix=str(opts.endpoint).rstrip("/") + prefix,
            username=opts.username,
            password=password,
        )
    else:
        token = read_secret("api_token", env=opts.api_token_env, file=opts.api_token_file)
        auth = VastApiTokenAuth(token)
    client = VendorClient(
        vendor="VAST",
        options=opts,
        auth=auth,
        read_message=vast_message,
        headers={"X-Tenant-Name": opts.tenant} if opts.tenant else None,
        transport=transport,
    )
    api = VastApi(client, prefix=prefix)
    paths = StoragePaths(layout, PurePosixPath(opts.storage_base_path))
    staging = VFolderStaging(layout)
    quota = VastQuota(api, paths)
    return Driver(
        backend="vast",
        layout=layout,
        files=PosixFileOps(layout, staging=staging),
        directories=PlainDirectories(opts.dir_mode),
        quota=quota,
        usage=quota,
        snapshots=VastSnapshots(api, paths, staging, snapshot_dir=opts.snapshot_dir),
        management=RestManagement(client, api.probe, cache_seconds=opts.health_cache_seconds),
        mount_options=opts.mount_options,
    )


BACKEND = Backend(name="vast", build=vast_driver, options=VastOptions)
