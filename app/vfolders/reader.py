"""Reading one vfolder's metadata and access rules through the cache, shared by every domain
that acts on a vfolder (its own lifecycle, files, grants).

The access rules (owner, group mode, grants) are cached under a key that embeds a version,
``vfolder:{id}:access:{version}``; every change bumps ``vfolder:{id}:access-version`` after
its commit. A reader that fetched the old rules before that commit can only store them under
the old version, which nobody reads again: a revocation holds from the very next request, on
every node sharing the cache."""

from __future__ import annotations

import json
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.cache import Cache
from app.errors import VFolderDeleted, VFolderNotFound, VFolderNotReady
from app.permissions.models import GranteeType, Mode
from app.permissions.policy import (
    Access,
    AccessRules,
    Grant,
    Owner,
    VFolderOperation,
    authorize,
)
from app.permissions.repository import GrantRepository
from app.vfolders.models import VFolderStatus
from app.vfolders.repository import VFolderRepository
from app.vfolders.schemas import VFolder


def vfolder_cache_key(vfolder_id: uuid.UUID) -> str:
    return f"vfolder:{vfolder_id}:meta"


def access_version_key(vfolder_id: uuid.UUID) -> str:
    return f"vfolder:{vfolder_id}:access-version"


class VFolderReader:
    def __init__(self, *, cache: Cache, ttl_seconds: float) -> None:
        self._cache = cache
        self._ttl = ttl_seconds

    async def load(self, session: AsyncSession, vfolder_id: uuid.UUID) -> VFolder:
        """Raises ``VFolderNotFound``."""
        key = vfolder_cache_key(vfolder_id)
        cached = await self._cache.get(key)
        if cached is not None:
            return VFolder.model_validate_json(cached)
        row = await VFolderRepository(session).get(vfolder_id)
        if row is None:
            raise VFolderNotFound(f"vfolder {vfolder_id} not found", vfolder_id=str(vfolder_id))
        vfolder = VFolder.model_validate(row)
        await self._cache.set(key, vfolder.model_dump_json().encode(), ttl_seconds=self._ttl)
        return vfolder

    async def rules(self, session: AsyncSession, vfolder: VFolder) -> AccessRules:
        version = await self._cache.get(access_version_key(vfolder.id)) or b"0"
        key = f"vfolder:{vfolder.id}:access:{version.decode()}"
        cached = await self._cache.get(key)
        if cached is not None:
            return _rules_from_json(cached)
        rules = await load_rules(session, vfolder.id, vfolder=vfolder)
        await self._cache.set(key, _rules_to_json(rules), ttl_seconds=self._ttl)
        return rules

    async def load_authorized(
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
        ``VFolderDeleted``."""
        vfolder = await self.load(session, vfolder_id)
        access = authorize(
            principal,
            vfolder_id=vfolder.id,
            rules=await self.rules(session, vfolder),
            operation=operation,
        )
        if live and vfolder.status == VFolderStatus.DELETED:
            raise VFolderDeleted(f"vfolder {vfolder_id} is deleted", vfolder_id=str(vfolder_id))
        if live and vfolder.status == VFolderStatus.CLONING:
            raise VFolderNotReady(
                f"vfolder {vfolder_id} is still being cloned", vfolder_id=str(vfolder_id)
            )
        return vfolder, access

    async def rules_changed(self, vfolder_id: uuid.UUID) -> None:
        """Call after the commit of any change to owner, group mode or grants."""
        await self._cache.incr(access_version_key(vfolder_id))
        await self._cache.delete(vfolder_cache_key(vfolder_id))


async def load_rules(
    session: AsyncSession, vfolder_id: uuid.UUID, *, vfolder: VFolder | None = None
) -> AccessRules:
    """Straight from the database (the write paths use this, under their row lock)."""
    if vfolder is None:
        row = await VFolderRepository(session).get(vfolder_id)
        if row is None:
            raise VFolderNotFound(f"vfolder {vfolder_id} not found", vfolder_id=str(vfolder_id))
        owner = Owner(type=row.owner_type, id=row.owner_id)
        group_mode = Mode(row.group_mode)
    else:
        owner = Owner(type=vfolder.owner_type.value, id=vfolder.owner_id)
        group_mode = vfolder.group_mode
    grants = await GrantRepository(session).for_vfolder(vfolder_id)
    return AccessRules(
        owner=owner,
        group_mode=group_mode,
        grants=tuple(
            Grant(GranteeType(g.grantee_type), g.grantee_id, Mode(g.mode)) for g in grants
        ),
    )


def _rules_to_json(rules: AccessRules) -> bytes:
    return json.dumps(
        {
            "owner": [rules.owner.type, rules.owner.id],
            "group_mode": rules.group_mode.value,
            "grants": [[g.grantee_type.value, g.grantee_id, g.mode.value] for g in rules.grants],
        }
    ).encode()


def _rules_from_json(raw: bytes) -> AccessRules:
    data = json.loads(raw)
    return AccessRules(
        owner=Owner(type=data["owner"][0], id=data["owner"][1]),
        group_mode=Mode(data["group_mode"]),
        grants=tuple(Grant(GranteeType(t), i, Mode(m)) for t, i, m in data["grants"]),
    )
