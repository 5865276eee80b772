"""The ``purestorage`` backend: a Pure Storage FlashBlade file system mounted over NFS, managed
through the FlashBlade REST 2.x API (drivers/purestorage/client.py).

A vfolder is a plain directory in the file system. Data moves over the mount through the
shared POSIX file operations; the REST API does snapshots and health.

What it has, and what it lacks (capabilities are derived from the parts present):
- **no quota** (``quota=None``): FlashBlade has no directory quotas. Its REST API limits a
  whole file system (``provisioned`` + ``hard_limit_enabled``) or a user's or group's use,
  never a directory tree, so no vfolder limit can be pushed down to the array. Limits are
  the proxy's own ledger's.
- **no fast usage** (``usage=None``): the array reports space for the whole file system only
  (``GET file-systems?names=<fs>`` → ``items[0].space``), never for a directory, so a
  vfolder's usage is walked on the mount like the POSIX backend's. Capacity is the mount's
  ``statvfs``: over NFS that is the file system's own size and use, and it still answers
  when the management API does not.
- **snapshots** (``FlashBladeSnapshots``): file-system snapshots, each named for one vfolder,
  browsed and restored through the mount's snapshot directory (drivers/purestorage/parts.py).
- **no fast clone**: the array clones whole file systems only; a vfolder clone is the
  generic copy.
- **management API** (``RestManagement``): health is an authenticated read of the
  configured file system, reused for ``health_cache_seconds``.

Uploads are staged in the volume's ``.staging``: with no quota boundary inside the file
system, a rename from there into any vfolder stays within one file system."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field

from drivers.driver import Driver, PlainDirectories
from drivers.fsops import PosixFileOps
from drivers.options import read_secret
from drivers.purestorage.client import (
    VENDOR,
    FileSystemSnapshot,
    FileSystemSpace,
    FlashBladeApi,
    PureLogin,
    read_message,
)
from drivers.purestorage.parts import FlashBladeSnapshots, snapshot_suffix, suffix_prefix
from drivers.registry import Backend
from drivers.rest.client import VendorClient
from drivers.rest.health import RestManagement
from drivers.rest.options import RestApiOptions

__all__ = [
    "FileSystemSnapshot",
    "FileSystemSpace",
    "FlashBladeApi",
    "FlashBladeSnapshots",
    "PureLogin",
    "PureStorageOptions",
    "purestorage_driver",
    "read_message",
    "snapshot_suffix",
    "suffix_prefix",
]


class PureStorageOptions(RestApiOptions):
    file_system: str = Field(
        min_length=1,
        description="Name of the FlashBlade file system mounted at `mount_root` (its NFS "
        "export): the one snapshots are taken of and health is checked on.",
    )
    api_version: str = Field(
        default="2.12",
        pattern=r"^2\.[0-9]+$",
        description="FlashBlade REST API version, used in every path (`/api/<version>/…`). "
        "2.x only; the array lists its versions at `GET /api/api_version`.",
    )
    api_token_env: str | None = Field(
        default=None, description="Environment variable holding the API token."
    )
    api_token_file: Path | None = Field(
        default=None, description="File holding the API token (one of the two, not both)."
    )
    mount_root: Path | None = Field(
        default=None,
        description="Local directory where the file system's root is mounted (default: the "
        "volume's path). The volume's path must be inside it; a vfolder's path relative to "
        "it is its path in the file system, and in each snapshot under "
        "`<mount_root>/<snapshot_directory>/<file_system>.<suffix>/`.",
    )
    snapshot_directory: str = Field(
        default=".snapshot",
        pattern=r"^[^/\x00]+$",
        description="The file system's snapshot directory at `mount_root` (FlashBlade "
        "shows it when the file system's snapshot directory is enabled).",
    )
    eradicate_snapshots: bool = Field(
        default=True,
        description="Eradicate a deleted snapshot at once; false leaves it destroyed until "
        "the array's eradication delay ends (needed where SafeMode forbids eradication).",
    )


def purestorage_driver(
    root: Path,
    *,
    options: Mapping[str, Any] | PureStorageOptions | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Driver:
    opts = PureStorageOptions.model_validate(options or {})
    token = read_secret("api_token", env=opts.api_token_env, file=opts.api_token_file)
    layout = opts.build_layout(root)
    mount_root = (opts.mount_root or layout.root).resolve()
    if not layout.root.is_relative_to(mount_root):
        raise ValueError(f"mount_root {mount_root} does not contain the volume's path")
    endpoint = str(opts.endpoint)
    client = VendorClient(
        vendor=VENDOR,
        options=opts,
        auth=PureLogin(endpoint, token),
        read_message=read_message,
        transport=transport,
    )
    api = FlashBladeApi(client, api_version=opts.api_version, file_system=opts.file_system)
    return Driver(
        backend="purestorage",
        layout=layout,
        files=PosixFileOps(layout),
        directories=PlainDirectories(opts.dir_mode),
        quota=None,  # FlashBlade has no directory quotas
        usage=None,  # nor per-directory usage over REST
        snapshots=FlashBladeSnapshots(
            layout,
            api,
            mount_root=mount_root,
            snapshot_directory=opts.snapshot_directory,
            eradicate=opts.eradicate_snapshots,
        ),
        management=RestManagement(
            client, api.file_system_space, cache_seconds=opts.health_cache_seconds
        ),
        mount_options=opts.mount_options,
    )


BACKEND = Backend(name="purestorage", build=purestorage_driver, options=PureStorageOptions)
