"""The ``cephfs`` backend: a vfolder is a plain directory on a mounted CephFS (ceph-fuse or
the kernel client), and that directory is its quota realm. Data moves over the mount through
the shared safe file operations, with uploads staged inside the vfolder (``VFolderStaging``),
so committing one is a rename within the realm. Quota, fast usage and snapshots are the
mount's own virtual attributes and ``.snap`` directories (drivers/cephfs/parts.py); there is
no management API, and no fast clone (CephFS has none: a clone is a copy).

``.snap`` is reserved at every depth: CephFS answers to that name in every directory (a
``mkdir`` there would take a snapshot), so the file operations refuse it in any path and
never list or copy it. Options are the POSIX ones only."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drivers.cephfs.parts import (
    QUOTA_XATTR,
    RBYTES_XATTR,
    RFILES_XATTR,
    SNAP_DIR,
    CephQuota,
    CephSnapshots,
    OsXattrs,
    XattrOps,
    parse_count,
)
from drivers.driver import Driver, PlainDirectories
from drivers.fsops import PosixFileOps
from drivers.options import PosixOptions
from drivers.registry import Backend
from drivers.staging import VFolderStaging

__all__ = [
    "QUOTA_XATTR",
    "RBYTES_XATTR",
    "RFILES_XATTR",
    "SNAP_DIR",
    "CephFsOptions",
    "CephQuota",
    "CephSnapshots",
    "OsXattrs",
    "XattrOps",
    "cephfs_driver",
    "parse_count",
]


class CephFsOptions(PosixOptions):
    """The POSIX options (``layout``, ``dir_mode``, ``mount_options``); the volume's path is a
    directory on the mounted CephFS."""


def cephfs_driver(
    root: Path,
    *,
    options: Mapping[str, Any] | CephFsOptions | None = None,
    xattrs: XattrOps | None = None,
) -> Driver:
    """``xattrs``: the extended-attribute calls (tests pass a dict-backed fake)."""
    opts = CephFsOptions.model_validate(options or {})
    layout = opts.build_layout(root)
    quota = CephQuota(layout, xattrs)
    return Driver(
        backend="cephfs",
        layout=layout,
        files=PosixFileOps(
            layout,
            staging=VFolderStaging(layout),
            reserved_everywhere=frozenset({SNAP_DIR}),
        ),
        directories=PlainDirectories(opts.dir_mode),
        quota=quota,
        usage=quota,
        snapshots=CephSnapshots(layout, quota, dir_mode=opts.dir_mode),
        mount_options=opts.mount_options,
    )


BACKEND = Backend(name="cephfs", build=cephfs_driver, options=CephFsOptions)
