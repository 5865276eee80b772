"""Volumes as Backend.AI names and describes them."""

from __future__ import annotations

import asyncio

from app.errors import CapabilityMissing
from app.observability.context import bind_log_fields
from app.observability.logging import get_logger
from app.volumes.registry import VolumeRegistry
from drivers.base import VolumeDriver, capabilities_of
from drivers.errors import DriverError

log = get_logger(__name__)

# Backend.AI's names for our drivers, where it has one ("vfs" is its generic POSIX driver).
# Our driver names as Backend.AI's Manager knows its backends (the rest are spelled alike).
BACKEND_NAMES = {
    "posix": "vfs",
    "nfs": "vfs",
    "btrfs": "vfs",
    "ddn": "exascaler",
    "dellemc": "dellemc-onefs",
}
# Backend.AI's capability names (ai.backend.storage.abc): every volume here enforces quota
# scopes through the usage ledger, and knows a vfolder's usage without walking it.
ALWAYS = ("vfolder", "quota", "fast-size")
NATIVE = {"fast-usage": "fast-fs-size"}
HWINFO_TIMEOUT_SECONDS = 3.0


def backend_name(driver: VolumeDriver) -> str:
    return BACKEND_NAMES.get(driver.backend, driver.backend)


def describe(name: str, driver: VolumeDriver) -> dict[str, object]:
    native = [NATIVE[c] for c in capabilities_of(driver) if c in NATIVE]
    return {
        "name": name,
        "backend": backend_name(driver),
        "path": str(driver.root),
        "fsprefix": ".",
        "capabilities": [*ALWAYS, *native],
    }


class BackendAIVolumes:
    def __init__(self, volumes: VolumeRegistry) -> None:
        self._volumes = volumes

    def list(self) -> list[dict[str, object]]:
        """Never fails: the Manager's host list breaks on an error here."""
        return [describe(name, driver) for name, driver in self._volumes.items()]

    async def fs_usage(self, volume: str) -> dict[str, int]:
        driver = self._volumes.get(volume)
        bind_log_fields(volume=volume, backend=driver.backend, operation="fs-usage")
        capacity = await driver.capacity()
        # The Manager divides by the capacity.
        return {
            "capacity_bytes": max(capacity.total_bytes, 1),
            "used_bytes": capacity.used_bytes,
        }

    async def hwinfo(self, volume: str) -> dict[str, object]:
        driver = self._volumes.get(volume)
        bind_log_fields(volume=volume, backend=driver.backend, operation="hwinfo")
        try:
            await asyncio.wait_for(driver.check_writable(), HWINFO_TIMEOUT_SECONDS)
        except (DriverError, TimeoutError) as exc:
            log.warning("volume %s is unavailable: %s", volume, exc)
            return {"status": "unavailable", "status_info": str(exc) or "timed out", "metadata": {}}
        return {"status": "healthy", "status_info": None, "metadata": {}}

    def performance_metric(self, volume: str) -> dict[str, object]:
        driver = self._volumes.get(volume)
        bind_log_fields(volume=volume, backend=driver.backend, operation="performance-metric")
        raise CapabilityMissing(
            f"volume {volume!r} ({backend_name(driver)}) reports no performance metrics",
            volume=volume,
        )
