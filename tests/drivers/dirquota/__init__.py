"""An example backend, written the way a new one under ``drivers/`` is (CONTRIBUTING.md): a
"directory quota" whose quota boundary is the vfolder's own directory, as on filesystems that
put a byte limit on a directory tree (CephFS's ``ceph.quota.max_bytes``, Lustre and GPFS
filesets).

It is a fake: the limit is an extended attribute on the vfolder directory that nothing
enforces. What it shows is the composition: the POSIX parts, a quota strategy, and uploads
staged inside the boundary (``VFolderStaging``), so that committing one is a rename within the
directory tree and never a move (or copy) across its edge. The contract suite runs it
(tests/drivers/test_contract.py) and so does an HTTP test of every upload path
(tests/drivers/test_dirquota_uploads.py)."""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

from anyio import to_thread

from drivers.driver import Driver, PlainDirectories
from drivers.errors import BackendUnavailable, VFolderDirectoryMissing
from drivers.fsops import PosixFileOps
from drivers.layout import VFolderLayout
from drivers.options import PosixOptions
from drivers.registry import Backend
from drivers.staging import VFolderStaging

LIMIT_XATTR = "user.storage_proxy.max_bytes"


class DirectoryQuota:
    """``QuotaCapable``: the limit lives on the boundary directory itself, so it moves with
    the vfolder through the trash and back."""

    def __init__(self, layout: VFolderLayout) -> None:
        self.layout = layout

    def boundary(self, vfolder_id: UUID) -> Path:
        return self.layout.vfolder_path(vfolder_id)

    async def set_quota(self, vfolder_id: UUID, *, limit_bytes: int | None) -> None:
        await to_thread.run_sync(self._set_sync, vfolder_id, limit_bytes)

    async def get_quota(self, vfolder_id: UUID) -> int | None:
        return await to_thread.run_sync(self._get_sync, vfolder_id)

    def _set_sync(self, vfolder_id: UUID, limit_bytes: int | None) -> None:
        path = self.boundary(vfolder_id)
        try:
            if limit_bytes is None:
                try:
                    os.removexattr(path, LIMIT_XATTR, follow_symlinks=False)
                except OSError as exc:
                    if exc.errno != errno.ENODATA:
                        raise
                return
            os.setxattr(path, LIMIT_XATTR, str(limit_bytes).encode(), follow_symlinks=False)
        except FileNotFoundError:
            raise VFolderDirectoryMissing(str(vfolder_id)) from None
        except OSError as exc:
            raise BackendUnavailable(f"cannot set the limit of {path}: {exc}") from exc

    def _get_sync(self, vfolder_id: UUID) -> int | None:
        path = self.boundary(vfolder_id)
        try:
            return int(os.getxattr(path, LIMIT_XATTR, follow_symlinks=False))
        except FileNotFoundError:
            raise VFolderDirectoryMissing(str(vfolder_id)) from None
        except OSError as exc:
            if exc.errno == errno.ENODATA:
                return None
            raise BackendUnavailable(f"cannot read the limit of {path}: {exc}") from exc


def dirquota_driver(
    root: Path, *, options: Mapping[str, Any] | PosixOptions | None = None
) -> Driver:
    opts = PosixOptions.model_validate(options or {})
    layout = opts.build_layout(root)
    return Driver(
        backend="dirquota",
        layout=layout,
        # Staged inside the vfolder directory, the quota boundary: the commit is a rename
        # within it.
        files=PosixFileOps(layout, staging=VFolderStaging(layout)),
        directories=PlainDirectories(opts.dir_mode),
        quota=DirectoryQuota(layout),
        mount_options=opts.mount_options,
    )


# The one registry line: a package of its own declares it as an entry point instead,
# ``dirquota = "tests.drivers.dirquota:BACKEND"`` in [project.entry-points."storage_proxy.drivers"].
BACKEND = Backend(name="dirquota", build=dirquota_driver, options=PosixOptions)
