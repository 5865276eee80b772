"""Reading one vfolder's metadata through the cache, shared by every domain that acts on a
vfolder (its own lifecycle, files, uploads)."""

from __future__ import annotations

import uuid

from app.auth.principal import Principal
from app.cache import Cache
from app.errors import VFolderDeleted, VFolderNotFound
from app.permissions.policy import Owner, VFolderOperation, authorize
from app.vfolders.models import VFolderStatus
from app.vfolders.repository import VFolderRepository
from app.vfolders.schemas import VFolder


def vfolder_cache_key(vfolder_id: uuid.UUID) -> str:
    return f"vfolder:{vfolder_id}:meta"


class VFolderReader:
    def __init__(self, *, cache: Cache, ttl_seconds: float) -> None:
        self._cache = cache
        self._ttl = ttl_seconds

    async def load(self, repository: VFolderRepository, vfolder_id: uuid.UUID) -> VFolder:
        """Raises ``VFolderNotFound``."""
        key = vfolder_cache_key(vfolder_id)
        cached = await self._cache.get(key)
        if cached is not None:
            return VFolder.model_validate_json(cached)
        row = await repository.get(vfolder_id)
        if row is None:
            raise VFolderNotFound(f"vfolder {vfolder_id} not found", vfolder_id=str(vfolder_id))
        vfolder = VFolder.model_validate(row)
        await self._cache.set(key, vfolder.model_dump_json().encode(), ttl_seconds=self._ttl)
        return vfolder

    async def load_authorized(
        self,
        repository: VFolderRepository,
        principal: Principal,
        vfolder_id: uuid.UUID,
        operation: VFolderOperation,
        *,
        live: bool = True,
    ) -> VFolder:
        """The vfolder, if ``principal`` may perform ``operation`` on it (else
        ``VFolderNotFound``); with ``live``, a deleted vfolder is ``VFolderDeleted``."""
        vfolder = await self.load(repository, vfolder_id)
        authorize(
            principal,
            vfolder_id=vfolder.id,
            owner=Owner(type=vfolder.owner_type.value, id=vfolder.owner_id),
            operation=operation,
        )
        if live and vfolder.status == VFolderStatus.DELETED:
            raise VFolderDeleted(f"vfolder {vfolder_id} is deleted", vfolder_id=str(vfolder_id))
        return vfolder
