"""Driver names as used in ``[volumes.<name>] driver = "..."``. A new backend is one new module
plus one line here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.base import VolumeDriver
from drivers.btrfs import BtrfsDriver
from drivers.errors import InvalidDriverOptions, UnknownDriver
from drivers.posix import PosixDriver
from drivers.xfs import XfsDriver

DriverFactory = Callable[..., VolumeDriver]

DRIVERS: dict[str, DriverFactory] = {
    "btrfs": BtrfsDriver,
    "posix": PosixDriver,
    "xfs": XfsDriver,
}

# Other names operators already use for a driver: Backend.AI calls the POSIX one ``vfs``.
ALIASES: dict[str, str] = {"vfs": "posix"}

# The options each driver reads; any other is a typo that would silently do nothing.
DRIVER_OPTIONS: dict[str, frozenset[str]] = {
    "btrfs": BtrfsDriver.OPTIONS,
    "posix": PosixDriver.OPTIONS,
    "xfs": XfsDriver.OPTIONS,
}


def canonical_driver_name(name: str) -> str:
    """The registered name for ``name`` (an alias resolved); ``UnknownDriver`` otherwise."""
    canonical = ALIASES.get(name, name)
    if canonical not in DRIVERS:
        known = ", ".join(sorted([*DRIVERS, *ALIASES]))
        raise UnknownDriver(f"unknown driver {name!r} (known: {known})")
    return canonical


def build_driver(name: str, *, root: Path, options: dict[str, Any]) -> VolumeDriver:
    canonical = canonical_driver_name(name)
    unknown = sorted(set(options) - DRIVER_OPTIONS[canonical])
    if unknown:
        accepted = ", ".join(sorted(DRIVER_OPTIONS[canonical]))
        raise InvalidDriverOptions(
            f"driver {canonical!r} takes no option {', '.join(map(repr, unknown))} "
            f"(it takes: {accepted})"
        )
    try:
        return DRIVERS[canonical](root, options=options)
    except (TypeError, ValueError) as exc:
        raise InvalidDriverOptions(f"driver {canonical!r}: bad option value: {exc}") from exc
