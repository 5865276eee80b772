"""The access gate: every operation on a vfolder's content reaches its volume through here.

``target`` reads the vfolder (through the cache), checks the caller's access with the rules of
``app.permissions.policy`` (404 before 403, so existence never leaks; a deleted vfolder 410,
one still being cloned 409), and only then hands out the volume's driver. It holds no database
connection past the check: bytes flow afterwards without one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.principal import Principal
from app.observability.context import bind_log_fields
from app.permissions.policy import Access, VFolderOperation
from app.vfolders.reader import VFolderReader
from app.vfolders.schemas import VFolder
from app.volumes.registry import VolumeRegistry
from drivers.base import VolumeDriver


@dataclass(frozen=True, slots=True)
class Target:
    """A vfolder the caller may act on, its volume's driver and the caller's access."""

    vfolder: VFolder
    driver: VolumeDriver
    access: Access


class AccessGate:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        reader: VFolderReader,
        volumes: VolumeRegistry,
    ) -> None:
        self._sessions = sessions
        self._reader = reader
        self._volumes = volumes

    async def target(
        self, principal: Principal, vfolder_id: uuid.UUID, operation: VFolderOperation
    ) -> Target:
        """The vfolder and its driver, if ``principal`` may do ``operation`` on it; else
        ``VFolderNotFound``, ``Forbidden``, ``VFolderDeleted`` or ``VFolderNotReady``."""
        async with self._sessions() as session:
            vfolder, access = await self._reader.load_authorized(
                session, principal, vfolder_id, operation
            )
        driver = self._volumes.get(vfolder.volume)
        bind_log_fields(vfolder_id=vfolder_id, backend=driver.backend, operation=operation.value)
        return Target(vfolder, driver, access)
