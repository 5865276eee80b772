"""The ``netapp`` backend: NetApp ONTAP over NFS, managed through its REST API.

The volume's ``path`` is where the ONTAP volume (a FlexVol or FlexGroup) is mounted: the
mount of its junction path, not a directory below it, because ONTAP makes qtrees only at a
volume's root. A vfolder is the qtree named by its id's hex, ``<path>/<hex>``; its quota
is a tree quota rule on that qtree, its usage the qtree's quota report, its snapshots
snapshots of the volume named after it (drivers/netapp/parts.py). Data moves over the
mount; the management API (drivers/netapp/client.py) does the rest. ONTAP refuses a
rename from one qtree into another, so nothing here crosses a qtree's edge by a rename:
uploads are staged inside the qtree (``VFolderStaging``), a directory deleted from a vfolder
goes out of sight inside it (``QtreeFileOps``), a clone is copied into the new qtree, and a
deleted vfolder's qtree is renamed through the API (``QtreeTrash``).

Capabilities: quota, fast-usage, snapshot. No fast clone: ONTAP clones single files
(FlexClone licence) or whole volumes, not a qtree, so a clone is a copy over the mount.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import Field

from drivers.driver import Driver
from drivers.layout import VFolderLayout
from drivers.netapp.client import VENDOR, OntapApi, OntapBasicAuth, read_ontap_message
from drivers.netapp.parts import (
    OntapVolume,
    QtreeFileOps,
    QtreeLayout,
    QtreeQuota,
    Qtrees,
    QtreeTrash,
    VolumeSnapshots,
)
from drivers.options import read_secret
from drivers.registry import Backend
from drivers.rest.client import VendorClient
from drivers.rest.health import RestManagement
from drivers.rest.options import RestApiOptions
from drivers.staging import VFolderStaging

__all__ = ["NetAppOptions", "netapp_driver"]


class NetAppOptions(RestApiOptions):
    layout: Literal["qtree"] = Field(  # type: ignore[assignment]
        default="qtree",
        description="Always `qtree`: a vfolder is the qtree <path>/<hex> (ONTAP makes qtrees "
        "only at a volume's root).",
    )
    volume: str = Field(
        description="The ONTAP volume mounted at the volume's path (its junction). A vfolder "
        "is the qtree <volume>/<vfolder hex>, which is <path>/<vfolder hex> on the mount."
    )
    svm: str | None = Field(
        default=None, description="The SVM of the volume, where several have one of its name."
    )
    username: str = Field(description="The ONTAP user the API is called as (HTTP Basic).")
    password_env: str | None = Field(
        default=None, description="Environment variable holding the password."
    )
    password_file: Path | None = Field(default=None, description="File holding the password.")
    qtree_user_id: int | None = Field(
        default=None,
        ge=0,
        description="Owner uid of a new qtree's root (default: the proxy's own uid).",
    )
    qtree_group_id: int | None = Field(
        default=None,
        ge=0,
        description="Owner gid of a new qtree's root (default: the proxy's own gid).",
    )
    job_timeout_seconds: float = Field(
        default=120.0, gt=0, le=3600, description="How long an ONTAP job is waited for."
    )
    return_timeout_seconds: int = Field(
        default=10,
        ge=0,
        le=120,
        description="How long ONTAP is asked to wait for a job before answering 202 "
        "(`return_timeout`); keep it under timeout_seconds.",
    )
    visibility_timeout_seconds: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="How long a new qtree may take to show over NFS (attribute caching).",
    )

    def build_layout(self, root: Path) -> VFolderLayout:
        return QtreeLayout(root.resolve())


def netapp_driver(
    root: Path,
    *,
    options: Mapping[str, Any] | NetAppOptions | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Driver:
    opts = NetAppOptions.model_validate(options or {})
    if opts.return_timeout_seconds >= opts.timeout_seconds:
        raise ValueError("return_timeout_seconds must be shorter than timeout_seconds")

    def password() -> Any:
        return read_secret("password", env=opts.password_env, file=opts.password_file)

    layout = opts.build_layout(root)
    assert isinstance(layout, QtreeLayout)
    client = VendorClient(
        vendor=VENDOR,
        options=opts,
        auth=OntapBasicAuth(opts.username, password(), password),
        read_message=read_ontap_message,
        transport=transport,
    )
    api = OntapApi(
        client,
        job_timeout_seconds=opts.job_timeout_seconds,
        return_timeout_seconds=opts.return_timeout_seconds,
    )
    volume = OntapVolume(api, name=opts.volume, svm=opts.svm)
    quota = QtreeQuota(layout, volume)
    qtrees = Qtrees(
        layout,
        volume,
        dir_mode=opts.dir_mode,
        user_id=os.getuid() if opts.qtree_user_id is None else opts.qtree_user_id,
        group_id=os.getgid() if opts.qtree_group_id is None else opts.qtree_group_id,
        visibility_timeout_seconds=opts.visibility_timeout_seconds,
    )

    async def probe() -> object:
        return await api.get("/api/cluster", {"fields": "version"})

    return Driver(
        backend="netapp",
        layout=layout,
        files=QtreeFileOps(layout, staging=VFolderStaging(layout)),
        directories=qtrees,
        quota=quota,
        usage=quota,
        snapshots=VolumeSnapshots(layout, volume),
        management=RestManagement(client, probe, cache_seconds=opts.health_cache_seconds),
        trash=QtreeTrash(qtrees),
        mount_options=opts.mount_options,
    )


BACKEND = Backend(name="netapp", build=netapp_driver, options=NetAppOptions)
