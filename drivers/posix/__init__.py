"""The generic POSIX backend: local disk, NFS, any mounted filesystem. The required core only:
quota, usage, snapshots and clones fall back to the services layer's generic code.

Options (``[volumes.<name>.options]``): ``dir_mode`` of new vfolders (default ``0o755``),
``mount_options`` handed to Agents, ``layout``: ``sharded`` (default) or ``backendai``
(drivers/layout.py). Other backends built on a POSIX path take the same options
(``PosixOptions``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.driver import DEFAULT_DIR_MODE, Driver, PlainDirectories
from drivers.fsops import PosixFileOps
from drivers.layout import SHARDED, VFolderLayout, build_layout
from drivers.registry import Backend

OPTIONS = frozenset({"dir_mode", "mount_options", "layout"})


@dataclass(frozen=True, slots=True)
class PosixOptions:
    """The options every backend over a POSIX path shares, read and checked."""

    layout: VFolderLayout
    dir_mode: int
    mount_options: tuple[str, ...]

    @classmethod
    def parse(cls, root: Path, options: dict[str, Any] | None) -> PosixOptions:
        opts = options or {}
        mount_options = opts.get("mount_options", ())
        if not isinstance(mount_options, list | tuple):
            raise ValueError(f"mount_options must be a list, not {mount_options!r}")
        return cls(
            layout=build_layout(str(opts.get("layout", SHARDED)), root.resolve()),
            dir_mode=int(str(opts.get("dir_mode", oct(DEFAULT_DIR_MODE))), 0),
            mount_options=tuple(str(o) for o in mount_options),
        )


def posix_driver(root: Path, *, options: dict[str, Any] | None = None) -> Driver:
    opts = PosixOptions.parse(root, options)
    return Driver(
        backend="posix",
        layout=opts.layout,
        files=PosixFileOps(opts.layout),  # staged in the volume's area: no boundary to cross
        directories=PlainDirectories(opts.dir_mode),
        mount_options=opts.mount_options,
    )


# Backend.AI calls this driver ``vfs``.
BACKEND = Backend(name="posix", build=posix_driver, options=OPTIONS, aliases=("vfs",))
