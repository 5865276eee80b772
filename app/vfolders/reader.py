"""Reading one vfolder's metadata and access rules through the cache, shared by every domain
that acts on a vfolder (its own lifecycle, files, grants), and announcing changes to them.

A vfolder's row and its access rules (owner, group mode, grants) are cached together under the
vfolder's current cache generation (see ``app.cache.base``). Permissions fail closed:

- a change that can narrow access (revoke, grant change, group mode, delete) is announced
  *before* its commit (``guard_access_change``): a fence goes up on the vfolder and a new
  generation is drawn. If that cannot reach the cache the other nodes read, the change is
  refused (503 ``/problems/unavailable``) and rolls back. After the commit another generation
  is drawn and the fence comes down; should that fail, the fence lapses by itself;
- while a fence stands, every node reads the vfolder from the database and caches nothing,
  so none can store the state of before the commit under a generation that outlives it;
- a node that cannot reach the shared cache trusts nothing cached and reads the database.

Changes nobody's access depends on (a name, a quota) only invalidate, best effort."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.cache import Cache, CacheUnreachable
from app.db.session import ScheduleAfterCommit
from app.errors import AccessChangeUnannounced, VFolderNotFound
from app.observability.logging import get_logger
from app.permissions.models import GranteeType, Mode
from app.permissions.policy import AccessRules, Grant, Owner
from app.permissions.repository import GrantRepository
from app.vfolders.models import VFolderStatus
from app.vfolders.repository import VFolderRepository
from app.vfolders.schemas import VFolder

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _CacheLookup:
    """What the cache said of a vfolder: its entry, or the generation and key that the entry
    read from the database goes under (no generation: nothing may be cached now)."""

    found: tuple[VFolder, AccessRules] | None
    generation: str | None
    key: str


# What this task has just read of one vfolder, while a caller lets it be reused (``reusing``).
_JUST_READ: ContextVar[tuple[uuid.UUID, tuple[VFolder, AccessRules]] | None] = ContextVar(
    "just_read_vfolder", default=None
)


def cache_subject(vfolder_id: uuid.UUID) -> str:
    return f"vfolder:{vfolder_id}"


class VFolderReader:
    def __init__(self, *, cache: Cache, ttl_seconds: float) -> None:
        self._cache = cache
        self._ttl = ttl_seconds

    async def load(
        self, session: AsyncSession, vfolder_id: uuid.UUID
    ) -> tuple[VFolder, AccessRules]:
        """The vfolder and its access rules; raises ``VFolderNotFound``."""
        lookup = await self._look_up(vfolder_id)
        if lookup.found is not None:
            return lookup.found
        return await self._load_and_cache(session, vfolder_id, lookup)

    async def read(
        self, sessions: Callable[[], AsyncSession], vfolder_id: uuid.UUID
    ) -> tuple[VFolder, AccessRules]:
        """``load`` for a caller outside any transaction: a session is opened only when the
        cache cannot answer (building one costs more than the cached read itself)."""
        just_read = _JUST_READ.get()
        if just_read is not None and just_read[0] == vfolder_id:
            return just_read[1]
        lookup = await self._look_up(vfolder_id)
        if lookup.found is not None:
            return lookup.found
        async with sessions() as session:
            return await self._load_and_cache(session, vfolder_id, lookup)

    @staticmethod
    @contextlib.contextmanager
    def reusing(vfolder_id: uuid.UUID, entry: tuple[VFolder, AccessRules]) -> Iterator[None]:
        """Within the block, ``read`` of ``vfolder_id`` in this task answers ``entry``, just
        read, without asking the cache again (on Redis, two round trips): for a facade that
        looks a vfolder up and then hands it to a service that checks access on it, with no
        change of the vfolder between."""
        token = _JUST_READ.set((vfolder_id, entry))
        try:
            yield
        finally:
            _JUST_READ.reset(token)

    async def _look_up(self, vfolder_id: uuid.UUID) -> _CacheLookup:
        generation = await self._cache.generation(cache_subject(vfolder_id))
        key = f"{cache_subject(vfolder_id)}:{generation}"
        if generation is not None:
            cached = await self._cache.get(key)
            if cached is not None:
                return _CacheLookup(_entry_from_json(cached), generation, key)
        return _CacheLookup(None, generation, key)

    async def _load_and_cache(
        self, session: AsyncSession, vfolder_id: uuid.UUID, lookup: _CacheLookup
    ) -> tuple[VFolder, AccessRules]:
        row = await VFolderRepository(session).get(vfolder_id)
        if row is None:
            raise VFolderNotFound(f"vfolder {vfolder_id} not found", vfolder_id=str(vfolder_id))
        vfolder = VFolder.model_validate(row)
        rules = await load_rules(session, vfolder_id, vfolder=vfolder)
        # A clone's target turns ready (or deleted) without an announcement: not cached.
        if lookup.generation is not None and vfolder.status != VFolderStatus.CLONING:
            await self._cache.set(lookup.key, _entry_to_json(vfolder, rules), ttl_seconds=self._ttl)
        return vfolder, rules

    async def guard_access_change(
        self, vfolder_id: uuid.UUID, after_commit: ScheduleAfterCommit
    ) -> None:
        """Call inside the transaction of a change to who may do what on the vfolder (owner,
        group mode, grants, its deletion), before the commit. Raises
        ``AccessChangeUnannounced`` when the other nodes cannot be told: the caller's
        transaction must roll back."""
        subject = cache_subject(vfolder_id)
        try:
            fence = await self._cache.begin_change(subject)
        except CacheUnreachable as exc:
            log.warning("access change refused: it cannot be announced to other nodes")
            raise AccessChangeUnannounced(
                "the change cannot be announced to the other nodes now; nothing was changed",
                vfolder_id=str(vfolder_id),
            ) from exc

        async def announce_end() -> None:
            await self._end_change(subject, fence)

        after_commit(announce_end)

    async def invalidate(self, vfolder_id: uuid.UUID, after_commit: ScheduleAfterCommit) -> None:
        """Best effort, now and after the commit, for changes no access depends on (name,
        quota): a lost invalidation only shows an old value until the entry expires."""
        subject = cache_subject(vfolder_id)
        await self._end_change(subject, None)

        async def again() -> None:  # a reader may have cached the old row before the commit
            await self._end_change(subject, None)

        after_commit(again)

    async def _end_change(self, subject: str, fence: str | None) -> None:
        try:
            await self._cache.end_change(subject, fence)
        except CacheUnreachable:
            # A fence left up lapses by itself (FENCE_SECONDS); until then nobody caches.
            log.warning("cache invalidation lost: the cache is unreachable from this node")


async def load_rules(
    session: AsyncSession,
    vfolder_id: uuid.UUID,
    *,
    vfolder: VFolder | None = None,
    created_now: bool = False,
) -> AccessRules:
    """Straight from the database (the write paths use this, under their row lock).
    ``created_now``: the vfolder was created in this transaction, so it has no grants yet."""
    if vfolder is None:
        row = await VFolderRepository(session).get(vfolder_id)
        if row is None:
            raise VFolderNotFound(f"vfolder {vfolder_id} not found", vfolder_id=str(vfolder_id))
        owner = Owner(type=row.owner_type, id=row.owner_id)
        group_mode = Mode(row.group_mode)
    else:
        owner = Owner(type=vfolder.owner_type.value, id=vfolder.owner_id)
        group_mode = vfolder.group_mode
    grants = [] if created_now else await GrantRepository(session).for_vfolder(vfolder_id)
    return AccessRules(
        owner=owner,
        group_mode=group_mode,
        grants=tuple(
            Grant(GranteeType(g.grantee_type), g.grantee_id, Mode(g.mode)) for g in grants
        ),
    )


def _entry_to_json(vfolder: VFolder, rules: AccessRules) -> bytes:
    return json.dumps(
        {
            "vfolder": vfolder.model_dump(mode="json"),
            "owner": [rules.owner.type, rules.owner.id],
            "group_mode": rules.group_mode.value,
            "grants": [[g.grantee_type.value, g.grantee_id, g.mode.value] for g in rules.grants],
        }
    ).encode()


def _entry_from_json(raw: bytes) -> tuple[VFolder, AccessRules]:
    data = json.loads(raw)
    rules = AccessRules(
        owner=Owner(type=data["owner"][0], id=data["owner"][1]),
        group_mode=Mode(data["group_mode"]),
        grants=tuple(Grant(GranteeType(t), i, Mode(m)) for t, i, m in data["grants"]),
    )
    return VFolder.model_validate(data["vfolder"]), rules
