"""Readiness: the database answers, every volume takes a write, the cache answers (a missing
cache only degrades: requests bypass it), and each storage system's management API answers (a
silent one only degrades too)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from app.cache import CacheStatus
from app.core.runtime import Runtime
from app.errors import ServiceNotReady
from app.health.schemas import Check, CheckStatus, Readiness
from drivers.base import ManagementApi
from drivers.errors import DriverError

CHECK_TIMEOUT_SECONDS = 3.0


class HealthService:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def require_ready(self) -> Readiness:
        """Raises ``ServiceNotReady`` (with every check's result) when something failed."""
        readiness = await self.readiness()
        if readiness.status is CheckStatus.FAILED:
            failed = sorted(
                n for n, c in readiness.checks.items() if c.status is CheckStatus.FAILED
            )
            raise ServiceNotReady(
                "failing: " + ", ".join(failed),
                checks={name: check.model_dump() for name, check in readiness.checks.items()},
            )
        return readiness

    async def readiness(self) -> Readiness:
        checks = {"database": await self._check_database(), "cache": await self._check_cache()}
        for name, driver in self._runtime.volumes.items():
            try:
                await asyncio.wait_for(driver.check_writable(), CHECK_TIMEOUT_SECONDS)
                checks[f"volume:{name}"] = Check(status=CheckStatus.OK)
            except (DriverError, TimeoutError) as exc:
                checks[f"volume:{name}"] = Check(status=CheckStatus.FAILED, detail=str(exc))
            if driver.management is not None:
                checks[f"management-api:{name}"] = await self._check_management(driver.management)
        statuses = {check.status for check in checks.values()}
        overall = (
            CheckStatus.FAILED
            if CheckStatus.FAILED in statuses
            else CheckStatus.DEGRADED
            if CheckStatus.DEGRADED in statuses
            else CheckStatus.OK
        )
        return Readiness(status=overall, checks=checks)

    async def _check_database(self) -> Check:
        try:
            async with (
                asyncio.timeout(CHECK_TIMEOUT_SECONDS),
                self._runtime.engine.connect() as conn,
            ):
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not ready", whatever its class
            return Check(status=CheckStatus.FAILED, detail=f"{type(exc).__name__}: {exc}")
        return Check(status=CheckStatus.OK)

    @staticmethod
    async def _check_management(management: ManagementApi) -> Check:
        """Degraded, not failed, when it does not answer: files still move over the mount;
        quota, usage and snapshot calls fail until it is back."""
        try:
            health = await asyncio.wait_for(management.check(), CHECK_TIMEOUT_SECONDS)
        except TimeoutError:
            return Check(status=CheckStatus.DEGRADED, detail="no answer in time")
        if health.reachable:
            return Check(status=CheckStatus.OK)
        return Check(status=CheckStatus.DEGRADED, detail=health.detail)

    async def _check_cache(self) -> Check:
        cache = self._runtime.cache
        if await cache.status() is CacheStatus.OK:
            return Check(status=CheckStatus.OK, detail=cache.backend)
        return Check(
            status=CheckStatus.DEGRADED, detail=f"{cache.backend} unreachable; cache bypassed"
        )
