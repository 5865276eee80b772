"""The ``nfs`` backend: a volume on an NFS export the proxy host has mounted. The data parts
are the POSIX ones (the same as ``posix``: no quota, usage, snapshot or clone capability; the
services layer measures and copies); what it adds is how an Agent mounts a vfolder itself,
straight from the NFS server, instead of bind-mounting the proxy host's path.

``mount_info(vfolder_id).extra`` carries (all strings):

- ``fstype``: ``nfs`` (NFSv3) or ``nfs4`` (NFSv4.x);
- ``source``: ``<server>:<export>/<the vfolder's path below the mount point>``, the first
  argument of ``mount -t <fstype>`` (an IPv6 server in brackets);
- ``server``, ``export``, ``path`` (that remote path alone), ``nfs_version``;
- ``options``: the mount options, comma-separated, ``vers=<nfs_version>`` first.

An Agent runs ``mount -t <fstype> -o <options> <source> <target>``.

Options (``[volumes.<name>.options]``), besides the POSIX ones: ``server`` and ``export``
(required), ``nfs_version`` (default ``4.1``), ``nfs_mount_options`` (default none),
``mount_point``: where this host mounted the export (default: the volume's path), so that a
volume that is a subdirectory of the export maps to the right remote path."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import Field, field_validator

from drivers.driver import Driver, PlainDirectories
from drivers.errors import BackendUnavailable
from drivers.fsops import PosixFileOps
from drivers.options import PosixOptions
from drivers.registry import Backend

__all__ = ["NfsExport", "NfsOptions", "nfs_driver"]

_NO_BLANKS = re.compile(r"^\S+$")
# A mount option: no blank, and no comma, which would split it in two.
_MOUNT_OPTION = re.compile(r"^[^\s,]+$")


class NfsOptions(PosixOptions):
    server: str = Field(
        min_length=1,
        description="The NFS server's host name or address, as Agents reach it.",
    )
    export: str = Field(
        description="The exported path on the server that is mounted at `mount_point` "
        "here (e.g. `/export/vfroot`).",
    )
    nfs_version: Literal["3", "4", "4.0", "4.1", "4.2"] = Field(
        default="4.1", description="The NFS version Agents mount with (`vers=`)."
    )
    nfs_mount_options: tuple[str, ...] = Field(
        default=(),
        description="Further NFS mount options for Agents (`hard`, `nconnect=4`…), after `vers=`.",
    )
    mount_point: Path | None = Field(
        default=None,
        description="Where this host mounted the export (default: the volume's path).",
    )

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        if not _NO_BLANKS.match(value) or "/" in value:
            raise ValueError("must be a host name or an address, without blanks or '/'")
        return value

    @field_validator("export")
    @classmethod
    def _export(cls, value: str) -> str:
        if not value.startswith("/") or not _NO_BLANKS.match(value):
            raise ValueError("must be an absolute path on the server, without blanks")
        if ".." in PurePosixPath(value).parts:
            raise ValueError("must not contain '..'")
        return value

    @field_validator("nfs_mount_options")
    @classmethod
    def _options(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for option in value:
            if not _MOUNT_OPTION.match(option):
                raise ValueError(f"{option!r} is not one mount option")
            if option.split("=", 1)[0] in ("vers", "nfsvers"):
                raise ValueError("set the version with nfs_version")
        return value


class NfsExport:
    """``DescribesMounts`` for a volume on an NFS export (see the module docstring)."""

    def __init__(
        self,
        *,
        server: str,
        export: str,
        mount_point: Path,
        nfs_version: str,
        nfs_mount_options: tuple[str, ...] = (),
    ) -> None:
        self.server = server
        self.export = PurePosixPath(export)
        self.mount_point = mount_point
        self.nfs_version = nfs_version
        self.options = ",".join((f"vers={nfs_version}", *nfs_mount_options))
        self.fstype = "nfs" if nfs_version == "3" else "nfs4"

    def remote_path(self, host_path: Path) -> PurePosixPath:
        try:
            below = host_path.relative_to(self.mount_point)
        except ValueError:
            raise BackendUnavailable(
                f"{host_path} is not under the NFS mount point {self.mount_point}"
            ) from None
        return self.export.joinpath(*below.parts)

    def mount_extra(self, host_path: Path) -> dict[str, str]:
        path = str(self.remote_path(host_path))
        host = (
            f"[{self.server}]"
            if ":" in self.server and not self.server.startswith("[")
            else self.server
        )
        return {
            "fstype": self.fstype,
            "source": f"{host}:{path}",
            "server": self.server,
            "export": str(self.export),
            "path": path,
            "nfs_version": self.nfs_version,
            "options": self.options,
        }


def nfs_driver(root: Path, *, options: Mapping[str, Any] | NfsOptions | None = None) -> Driver:
    opts = NfsOptions.model_validate(options or {})
    layout = opts.build_layout(root)
    mount_point = (opts.mount_point or layout.root).resolve()
    if not layout.root.is_relative_to(mount_point):
        raise BackendUnavailable(
            f"volume root {layout.root} is not under mount point {mount_point}"
        )
    return Driver(
        backend="nfs",
        layout=layout,
        files=PosixFileOps(layout),  # one filesystem, no quota boundary: the volume's staging
        directories=PlainDirectories(opts.dir_mode),
        mount_options=opts.mount_options,
        mounts=NfsExport(
            server=opts.server,
            export=opts.export,
            mount_point=mount_point,
            nfs_version=opts.nfs_version,
            nfs_mount_options=opts.nfs_mount_options,
        ),
    )


BACKEND = Backend(name="nfs", build=nfs_driver, options=NfsOptions)
