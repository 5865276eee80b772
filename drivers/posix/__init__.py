"""The generic POSIX backend: local disk, NFS, any mounted filesystem. The required core only:
quota, usage, snapshots and clones fall back to the services layer's generic code.

Options (``[volumes.<name>.options]``): ``dir_mode`` of new vfolders (default ``0o755``),
``mount_options`` handed to Agents, ``layout``: ``sharded`` (default) or ``backendai``
(drivers/layout.py). Other backends built on a POSIX path take the same options
(``drivers.options.PosixOptions``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drivers.driver import Driver, PlainDirectories
from drivers.fsops import PosixFileOps
from drivers.options import PosixOptions
from drivers.registry import Backend


def posix_driver(root: Path, *, options: Mapping[str, Any] | PosixOptions | None = None) -> Driver:
    opts = PosixOptions.model_validate(options or {})
    layout = opts.build_layout(root)
    return Driver(
        backend="posix",
        layout=layout,
        files=PosixFileOps(layout),  # staged in the volume's area: no boundary to cross
        directories=PlainDirectories(opts.dir_mode),
        mount_options=opts.mount_options,
    )


# Backend.AI calls this driver ``vfs``.
BACKEND = Backend(name="posix", build=posix_driver, options=PosixOptions, aliases=("vfs",))
