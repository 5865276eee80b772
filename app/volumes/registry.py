"""The configured volumes, each with its driver, built once at startup."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from app.config import ConfigurationError, VolumeConfig
from app.errors import VolumeNotFound
from drivers.base import VolumeDriver
from drivers.errors import DriverError
from drivers.registry import build_driver


class VolumeRegistry:
    def __init__(self, drivers: Mapping[str, VolumeDriver]) -> None:
        self._drivers = dict(drivers)

    @classmethod
    def from_config(cls, volumes: Mapping[str, VolumeConfig]) -> VolumeRegistry:
        drivers: dict[str, VolumeDriver] = {}
        for name, config in volumes.items():
            try:
                drivers[name] = build_driver(
                    config.driver, root=config.path, options=config.options
                )
            except DriverError as exc:
                # Unknown driver, an option it does not take, or a root it cannot use.
                raise ConfigurationError(f"volume {name!r}: {exc}") from exc
        return cls(drivers)

    def get(self, name: str) -> VolumeDriver:
        try:
            return self._drivers[name]
        except KeyError:
            raise VolumeNotFound(f"no volume named {name!r}", volume=name) from None

    def names(self) -> list[str]:
        return sorted(self._drivers)

    def items(self) -> Iterator[tuple[str, VolumeDriver]]:
        return iter(sorted(self._drivers.items()))

    async def initialize(self) -> None:
        for _name, driver in self.items():
            await driver.initialize()

    async def aclose(self) -> None:
        for _name, driver in self.items():
            await driver.aclose()
