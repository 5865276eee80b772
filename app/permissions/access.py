"""The access gate: every operation on a vfolder reaches it through here.

``authorize`` reads the vfolder (through the cache; ``authorize_locked`` from the database,
under the row's lock, for a change to the vfolder) and checks the caller's access with the
rules of ``app.permissions.policy``: 404 before 403, so existence never leaks; a deleted
vfolder 410, one still being cloned 409. ``target`` does that in a short session of its own and
only then hands out the volume's driver: it holds no database connection past the check, so
bytes flow afterwards without one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.principal import Principal
from app.errors import VFolderDeleted, VFolderNotFound, VFolderNotReady
from app.observability.context import bind_log_fields
from app.permissions.policy import (
    ADMIN_ACCESS,
    Access,
    AccessRules,
    VFolderOperation,
    authorize,
)
from app.vfolders.models import VFolderRow, VFolderStatus
from app.vfolders.reader import VFolderReader, load_rules
from app.vfolders.repository import VFolderRepository
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

    async def authorize(
        self,
        session: AsyncSession,
        principal: Principal,
        vfolder_id: uuid.UUID,
        operation: VFolderOperation,
        *,
        live: bool = True,
    ) -> tuple[VFolder, Access]:
        """The vfolder and the caller's access, if it allows ``operation`` (else
        ``VFolderNotFound`` or ``Forbidden``); with ``live``, a deleted vfolder is
        ``VFolderDeleted`` and one being cloned ``VFolderNotReady``. Read in ``session``,
        for a caller that acts on the vfolder's rows in the same transaction."""
        vfolder, rules = await self._reader.load(session, vfolder_id)
        return vfolder, _judged(principal, vfolder, rules, operation, live=live)

    async def authorize_locked(
        self,
        session: AsyncSession,
        principal: Principal,
        vfolder_id: uuid.UUID,
        operation: VFolderOperation,
    ) -> tuple[VFolderRow, Access]:
        """The vfolder's row, locked for update in ``session``, and the caller's access, read
        straight from the database: a change to a vfolder never trusts a cache. A deleted
        vfolder is returned (its status is the caller's to judge)."""
        row = await VFolderRepository(session).get_for_update(vfolder_id)
        if row is None:
            raise VFolderNotFound(f"vfolder {vfolder_id} not found", vfolder_id=str(vfolder_id))
        if principal.is_admin:
            return row, ADMIN_ACCESS  # whatever the grants say: not read
        # The row is loaded already: only its grants are read.
        rules = await load_rules(session, vfolder_id, vfolder=VFolder.model_validate(row))
        access = authorize(principal, vfolder_id=vfolder_id, rules=rules, operation=operation)
        return row, access

    async def check(
        self, principal: Principal, vfolder_id: uuid.UUID, operation: VFolderOperation
    ) -> VFolder:
        """``authorize`` in a short session of its own, for a caller that then works in its
        own transactions (a request's would hold SQLite's write lock against them)."""
        vfolder, rules = await self._reader.read(self._sessions, vfolder_id)
        _judged(principal, vfolder, rules, operation, live=True)
        return vfolder

    async def target(
        self, principal: Principal, vfolder_id: uuid.UUID, operation: VFolderOperation
    ) -> Target:
        """The vfolder and its driver, if ``principal`` may do ``operation`` on it; else
        ``VFolderNotFound``, ``Forbidden``, ``VFolderDeleted`` or ``VFolderNotReady``."""
        vfolder, rules = await self._reader.read(self._sessions, vfolder_id)
        access = _judged(principal, vfolder, rules, operation, live=True)
        driver = self._volumes.get(vfolder.volume)
        bind_log_fields(vfolder_id=vfolder_id, backend=driver.backend, operation=operation.value)
        return Target(vfolder, driver, access)


def _judged(
    principal: Principal,
    vfolder: VFolder,
    rules: AccessRules,
    operation: VFolderOperation,
    *,
    live: bool,
) -> Access:
    """The caller's access to ``vfolder``, if it allows ``operation``."""
    access = authorize(principal, vfolder_id=vfolder.id, rules=rules, operation=operation)
    if live and vfolder.status == VFolderStatus.DELETED:
        raise VFolderDeleted(f"vfolder {vfolder.id} is deleted", vfolder_id=str(vfolder.id))
    if live and vfolder.status == VFolderStatus.CLONING:
        raise VFolderNotReady(
            f"vfolder {vfolder.id} is still being cloned", vfolder_id=str(vfolder.id)
        )
    return access
