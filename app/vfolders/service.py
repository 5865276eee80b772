"""Vfolder lifecycle: the rules between the API and the metadata store and the drivers."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.cache import Cache
from app.db.session import ScheduleAfterCommit
from app.errors import (
    InvalidRequest,
    StorageUnavailable,
    VFolderDeleted,
    VFolderIdConflict,
    VFolderNameConflict,
    VFolderNotFound,
)
from app.observability.context import bind_log_fields
from app.observability.logging import get_logger
from app.pagination import CursorSealer, Listing, principal_key, refused_cursor
from app.permissions.access import AccessGate
from app.permissions.models import Mode
from app.permissions.policy import (
    Access,
    AccessRules,
    Owner,
    VFolderOperation,
    access_of,
    authorize_chosen_id,
    authorize_create,
    visibility_scope,
)
from app.permissions.repository import GrantRepository
from app.vfolders.models import OwnerType, VFolderRow, VFolderStatus
from app.vfolders.reader import VFolderReader, load_rules
from app.vfolders.repository import DuplicateVFolder, VFolderFilter, VFolderRepository
from app.vfolders.schemas import (
    MAX_NAME_BYTES,
    VFolder,
    VFolderCreate,
    VFolderList,
    VFolderMount,
    VFolderUpdate,
    VFolderView,
)
from app.volumes.registry import VolumeRegistry
from drivers.base import TrashEntry
from drivers.errors import BackendUnavailable, VFolderDirectoryMissing
from drivers.types import VFolderOwner

log = get_logger(__name__)

CURSOR_KEYS = ("name", "id")


class VFolderService:
    def __init__(
        self,
        *,
        session: AsyncSession,
        volumes: VolumeRegistry,
        cache: Cache,
        reader: VFolderReader,
        gate: AccessGate,
        after_commit: ScheduleAfterCommit,
        on_trashed: Callable[[], Awaitable[None]],
        cursors: CursorSealer,
    ) -> None:
        self._cursors = cursors
        self._session = session
        self._repo = VFolderRepository(session)
        self._volumes = volumes
        self._cache = cache
        self._reader = reader
        self._gate = gate
        self._after_commit = after_commit
        self._on_trashed = on_trashed

    async def create(self, principal: Principal, data: VFolderCreate) -> tuple[VFolderView, bool]:
        """Returns the vfolder and whether it was created now (False: an idempotent replay)."""
        authorize_chosen_id(principal, data.id)
        driver = self._volumes.get(data.volume)
        owner = resolve_owner(principal, data)
        authorize_create(principal, owner)
        vfolder_id = data.id or uuid.uuid4()
        bind_log_fields(vfolder_id=vfolder_id, backend=driver.backend, operation="create")

        found = await self._repo.by_id_or_live_name(
            vfolder_id, owner_type=OwnerType(owner.type), owner_id=owner.id, name=data.name
        )
        for existing in found:
            if existing.id == vfolder_id:  # a chosen id: this create, repeated
                return await self._replay(principal, existing, data, owner), False
        if found:
            raise self._name_conflict(owner, data.name)

        try:
            row = await self._repo.add(
                VFolderRow(
                    id=vfolder_id,
                    name=data.name,
                    volume=data.volume,
                    owner_type=owner.type,
                    owner_id=owner.id,
                    status=VFolderStatus.READY.value,
                )
            )
        except DuplicateVFolder:
            # Lost a race with a concurrent create: same id (maybe the same request retried)
            # or the same name.
            concurrent = await self._repo.get(vfolder_id)
            if concurrent is not None:
                return await self._replay(principal, concurrent, data, owner), False
            raise self._name_conflict(owner, data.name) from None
        try:
            await driver.create_vfolder(vfolder_id, owner=VFolderOwner(owner.type, owner.id))
        except BackendUnavailable as exc:
            raise StorageUnavailable(str(exc), volume=data.volume) from exc
        log.info("vfolder created", extra={"vfolder_name": data.name, "volume": data.volume})
        return await as_seen_by(self._session, principal, row, created_now=True), True

    async def _replay(
        self, principal: Principal, existing: VFolderRow, data: VFolderCreate, owner: Owner
    ) -> VFolderView:
        same = (
            existing.name == data.name
            and existing.volume == data.volume
            and existing.owner_type == owner.type
            and existing.owner_id == owner.id
            and existing.status != VFolderStatus.DELETED.value
        )
        if not same:
            raise VFolderIdConflict(
                f"vfolder id {existing.id} is already used by a different vfolder",
                vfolder_id=str(existing.id),
            )
        return await self._as_seen_by(principal, existing)

    async def _as_seen_by(self, principal: Principal, row: VFolderRow) -> VFolderView:
        return await as_seen_by(self._session, principal, row)

    async def _ensure_name_free(self, owner: Owner, name: str) -> None:
        taken = await self._repo.get_live_by_name(
            owner_type=OwnerType(owner.type), owner_id=owner.id, name=name
        )
        if taken is not None:
            raise self._name_conflict(owner, name)

    @staticmethod
    def _name_conflict(owner: Owner, name: str) -> VFolderNameConflict:
        return VFolderNameConflict(
            f"{owner.type} {owner.id!r} already has a vfolder named {name!r}",
            name=name,
            owner_type=owner.type,
            owner_id=owner.id,
        )

    async def get(self, principal: Principal, vfolder_id: uuid.UUID) -> VFolderView:
        bind_log_fields(vfolder_id=vfolder_id, operation="get")
        vfolder, access = await self._gate.authorize(
            self._session, principal, vfolder_id, VFolderOperation.READ, live=False
        )
        return _view(vfolder, access)

    async def list(
        self,
        principal: Principal,
        *,
        where: VFolderFilter,
        cursor: str | None,
        limit: int,
    ) -> VFolderList:
        """The vfolders the caller has a mode on, with that mode; ``where.mode`` keeps those
        where it is at least that strong."""
        listing = _listing(principal, where)
        after = None
        if cursor is not None:
            after = _resume_point(self._cursors.open(cursor, listing=listing, keys=CURSOR_KEYS))
        scoped = VFolderFilter(
            visibility=visibility_scope(principal),
            volume=where.volume,
            owner_type=where.owner_type,
            owner_id=where.owner_id,
            name=where.name,
            status=where.status,
            mode=where.mode,
        )
        fetched = await self._repo.list_page(scoped, after=after, limit=limit + 1)
        rows = fetched[:limit]
        grants = await GrantRepository(self._session).for_vfolders([row.id for row in rows])
        page = []
        for row in rows:
            rules = AccessRules(
                owner=Owner(type=row.owner_type, id=row.owner_id),
                group_mode=Mode(row.group_mode),
                grants=grants.get(row.id, ()),
            )
            page.append(_view(VFolder.model_validate(row), access_of(principal, rules)))
        next_cursor = None
        if len(fetched) > limit:
            next_cursor = self._cursors.seal(
                {"name": page[-1].name, "id": str(page[-1].id)}, listing=listing
            )
        return VFolderList(items=page, next_cursor=next_cursor)

    async def update(
        self, principal: Principal, vfolder_id: uuid.UUID, changes: VFolderUpdate
    ) -> VFolderView:
        bind_log_fields(vfolder_id=vfolder_id, operation="update")
        row, access = await self._gate.authorize_locked(
            self._session, principal, vfolder_id, VFolderOperation.RENAME
        )
        if row.status == VFolderStatus.DELETED.value:
            raise VFolderDeleted(f"vfolder {vfolder_id} is deleted", vfolder_id=str(vfolder_id))
        if changes.name is not None and changes.name != row.name:
            owner = Owner(type=row.owner_type, id=row.owner_id)
            await self._ensure_name_free(owner, changes.name)
            row.name = changes.name
            try:
                await self._repo.save(row)
            except DuplicateVFolder:
                raise self._name_conflict(owner, changes.name) from None
            await self._reader.invalidate(vfolder_id, self._after_commit)
        if changes.group_mode is not None and changes.group_mode.value != row.group_mode:
            row.group_mode = changes.group_mode.value
            await self._repo.save(row)
            await self._reader.guard_access_change(vfolder_id, self._after_commit)
            log.info("group mode changed", extra={"group_mode": row.group_mode, "audit": True})
        return _view(VFolder.model_validate(row), access)

    async def delete(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        *,
        purge_later: bool = True,
        precondition: Callable[[VFolderRow], None] | None = None,
    ) -> TrashEntry | None:
        """Marks the vfolder deleted and moves its directory to the volume's trash in one
        step; the purge of its files happens in the background, or (``purge_later`` False)
        is the caller's to do once this transaction commits. Deleting twice is a no-op.
        ``precondition`` may refuse the locked row (by raising) before anything changes.
        Returns the trashed directory, None when nothing was moved."""
        bind_log_fields(vfolder_id=vfolder_id, operation="delete")
        row, _access = await self._gate.authorize_locked(
            self._session, principal, vfolder_id, VFolderOperation.DELETE
        )
        if precondition is not None:
            precondition(row)
        if row.status == VFolderStatus.DELETED.value:
            return None
        driver = self._volumes.get(row.volume)
        bind_log_fields(backend=driver.backend)
        await self._repo.mark_deleted(row, at=datetime.now(UTC))
        # Announced before the directory moves: a delete the other nodes cannot hear of is
        # refused while nothing has changed yet.
        await self._reader.guard_access_change(vfolder_id, self._after_commit)
        # The directory moves before the commit. Should the commit fail afterwards, the trash
        # purger finds a live row for the trashed directory and puts it back.
        entry = None
        try:
            entry = await driver.move_to_trash(vfolder_id)
        except VFolderDirectoryMissing:
            log.warning("deleted vfolder had no directory on its volume")
        except BackendUnavailable as exc:
            raise StorageUnavailable(str(exc), volume=row.volume) from exc

        async def wake_purger() -> None:
            await self._on_trashed()

        if purge_later:
            self._after_commit(wake_purger)
        log.info("vfolder deleted")
        return entry

    async def mount_info(self, principal: Principal, vfolder_id: uuid.UUID) -> VFolderMount:
        target = await self._gate.target(principal, vfolder_id, VFolderOperation.MOUNT)
        vfolder, access = target.vfolder, target.access
        info = await target.driver.mount_info(vfolder_id)
        return VFolderMount(
            vfolder_id=vfolder_id,
            volume=vfolder.volume,
            backend=info.backend,
            host_path=str(info.host_path),
            mount_options=list(info.mount_options),
            read_only=access.mode is not None and not access.mode.covers(Mode.RW),
            extra=info.extra,
        )


def resolve_owner(principal: Principal, data: VFolderCreate) -> Owner:
    if data.owner_id is None:
        if principal.user_id is None or data.owner_type == OwnerType.GROUP:
            raise InvalidRequest(
                "owner_id is required"
                + ("" if principal.user_id is not None else " when calling with a service key")
            )
        return Owner(type=OwnerType.USER.value, id=principal.user_id)
    return Owner(type=(data.owner_type or OwnerType.USER).value, id=data.owner_id)


def _listing(principal: Principal, where: VFolderFilter) -> Listing:
    """What a vfolder listing cursor is bound to: the caller, the filters and the order."""
    return {
        "endpoint": "vfolders-list",
        "principal": principal_key(principal),
        "sort": "name,id",
        "volume": where.volume,
        "owner_type": where.owner_type.value if where.owner_type else None,
        "owner_id": where.owner_id,
        "name": where.name,
        "status": where.status.value if where.status else None,
        "mode": where.mode.value if where.mode else None,
    }


def _resume_point(position: dict[str, object]) -> tuple[str, uuid.UUID]:
    name, vfolder_id = position["name"], position["id"]
    if not isinstance(name, str) or not isinstance(vfolder_id, str):
        raise refused_cursor("a resume point that is not a name and an id")
    try:
        if len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise refused_cursor("a resume name that is too long")
        return name, uuid.UUID(vfolder_id)
    except ValueError:  # a lone surrogate (UnicodeEncodeError), or not a UUID
        raise refused_cursor("a resume point that is not a name and an id") from None


async def as_seen_by(
    session: AsyncSession, principal: Principal, row: VFolderRow, *, created_now: bool = False
) -> VFolderView:
    """The vfolder with the caller's real mode (a group's member gets the group mode, a
    service key acting for a user that user's mode), as a later GET would answer."""
    vfolder = VFolder.model_validate(row)
    rules = await load_rules(session, row.id, vfolder=vfolder, created_now=created_now)
    access = access_of(principal, rules)
    if access.mode is None:
        raise VFolderNotFound(f"vfolder {row.id} not found", vfolder_id=str(row.id))
    return _view(vfolder, access)


def _view(vfolder: VFolder, access: Access) -> VFolderView:
    return VFolderView(**vfolder.model_dump(), mode=access.mode or Mode.RO)
