"""A management API's reachability, asked at most once per ``cache_seconds`` whoever asks
(``/health/ready`` scrapes, ``GET /v1/volumes``), and once at a time."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import anyio

from drivers.base import ManagementHealth
from drivers.errors import BackendUnavailable
from drivers.rest.client import VendorClient


class RestManagement:
    """``ManagementApi`` over a vendor client: ``probe`` is a cheap authenticated call."""

    def __init__(
        self,
        client: VendorClient,
        probe: Callable[[], Awaitable[object]],
        *,
        cache_seconds: float,
    ) -> None:
        self.client = client
        self._probe = probe
        self._cache_seconds = cache_seconds
        self._lock = anyio.Lock()
        self._last: tuple[float, ManagementHealth] | None = None

    async def check(self) -> ManagementHealth:
        async with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self._cache_seconds:
                return self._last[1]
            asked = time.monotonic()
            try:
                await self._probe()
                health = ManagementHealth(True, None, datetime.now(UTC))
            except BackendUnavailable as exc:  # BackendApiError included
                health = ManagementHealth(False, str(exc), datetime.now(UTC))
            self._last = (asked, health)
            return health

    async def aclose(self) -> None:
        await self.client.aclose()
