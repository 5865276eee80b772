from __future__ import annotations

from app.observability.context import bind_log_fields
from app.observability.logging import get_logger
from app.volumes.registry import VolumeRegistry
from app.volumes.schemas import ManagementApiStatus, Volume, VolumeCapacity, VolumeList
from drivers.base import VolumeDriver, capabilities_of
from drivers.errors import BackendUnavailable

log = get_logger(__name__)


class VolumeService:
    def __init__(self, volumes: VolumeRegistry) -> None:
        self._volumes = volumes

    async def list(self) -> VolumeList:
        return VolumeList(items=[await self._describe(n, d) for n, d in self._volumes.items()])

    async def get(self, name: str) -> Volume:
        return await self._describe(name, self._volumes.get(name))

    async def _describe(self, name: str, driver: VolumeDriver) -> Volume:
        bind_log_fields(backend=driver.backend)
        try:
            cap = await driver.capacity()
            capacity: VolumeCapacity | None = VolumeCapacity(
                total_bytes=cap.total_bytes, used_bytes=cap.used_bytes, free_bytes=cap.free_bytes
            )
        except BackendUnavailable as exc:
            log.warning("volume %s capacity unavailable: %s", name, exc)
            capacity = None
        management = None
        if driver.management is not None:
            health = await driver.management.check()
            management = ManagementApiStatus(
                reachable=health.reachable, detail=health.detail, checked_at=health.checked_at
            )
        return Volume(
            name=name,
            backend=driver.backend,
            capabilities=capabilities_of(driver),
            capacity=capacity,
            management_api=management,
        )
