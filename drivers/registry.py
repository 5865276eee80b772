"""Driver names as used in ``[volumes.<name>] driver = "..."``. A new backend is one new module
plus one line here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.base import VolumeDriver
from drivers.btrfs import BtrfsDriver
from drivers.errors import UnknownDriver
from drivers.posix import PosixDriver
from drivers.xfs import XfsDriver

DriverFactory = Callable[..., VolumeDriver]

DRIVERS: dict[str, DriverFactory] = {
    "btrfs": BtrfsDriver,
    "posix": PosixDriver,
    "xfs": XfsDriver,
}


def build_driver(name: str, *, root: Path, options: dict[str, Any]) -> VolumeDriver:
    try:
        factory = DRIVERS[name]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise UnknownDriver(f"unknown driver {name!r} (known: {known})") from None
    return factory(root, options=options)
