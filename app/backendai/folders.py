"""The Manager's folder calls on our services: a folder it creates is our vfolder with its id,
a generated name and the owner its quota scope names; deleting and cloning go through our
trash purge and clone task, and answer only once those are done (the 23.9 Manager takes a 2xx
as "finished")."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from app.backendai.auth import MANAGER_PRINCIPAL
from app.backendai.identity import QuotaScopeId, VFolderId
from app.backendai.lookup import belongs, find_vfolder
from app.backendai.quota_scopes import BackendAIQuotaScopes, initial_limit, limit_of
from app.core import services
from app.core.runtime import Runtime
from app.db.session import unit_of_work
from app.errors import (
    OperationFailed,
    OperationStillRunning,
    TaskNotFound,
    VFolderDeleted,
    VFolderNotFound,
)
from app.observability.context import bind_log_fields
from app.observability.logging import get_logger
from app.tasks.models import TaskRow, TaskState
from app.tasks.repository import TaskRepository
from app.tasks.service import owner_of, submit, wake_after_commit
from app.tasks.upkeep import EVERY_VOLUME, PURGE_TRASH
from app.vfolders.clone import CLONE_VFOLDER, start_clone
from app.vfolders.models import VFolderRow, VFolderStatus
from app.vfolders.purge import purge_deleted
from app.vfolders.repository import VFolderRepository
from app.vfolders.schemas import VFolder, VFolderCreate
from app.vfolders.service import VFolderService
from drivers.base import TrashEntry, VolumeDriver
from drivers.errors import NotADirectory, SymlinkNotFollowed
from drivers.paths import parse_relative_path
from drivers.types import EntryType

log = get_logger(__name__)

transaction = asynccontextmanager(unit_of_work)
# Waits poll quickly at first (a reflinked clone is done in milliseconds), then settle.
FIRST_POLL_SECONDS = 0.02
MAX_POLL_SECONDS = 0.5
# While a trashed folder waits, a purge is asked for again this often: one already running
# may have listed the trash before this folder arrived in it.
PURGE_AGAIN_SECONDS = 1.0


class BackendAIFolders:
    """Each call runs in transactions of its own: a delete or a clone commits before it
    waits for the work, which other transactions (the purge, the task) then do."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._volumes = runtime.volumes
        self._reader = runtime.vfolder_reader

    # -- services on one session ------------------------------------------------------------

    def _vfolders(self, session: AsyncSession) -> VFolderService:
        return services.vfolder_service(self._runtime, session)

    def _scopes(self, session: AsyncSession) -> BackendAIQuotaScopes:
        quotas = services.quota_service(self._runtime, session)
        return BackendAIQuotaScopes(session=session, quotas=quotas)

    # -- lifecycle --------------------------------------------------------------------------

    async def create(self, volume: str, vfid: VFolderId, options: Mapping[str, Any] | None) -> None:
        """Repeating a create of the same vfid is a no-op (the Manager may retry)."""
        self._volumes.get(volume)
        first_limit = initial_limit(options)
        async with transaction(self._runtime.sessions) as session:
            await self._scopes(session).ensure(volume, vfid.quota_scope, limit_bytes=first_limit)
            await self._vfolders(session).create(MANAGER_PRINCIPAL, _create_request(volume, vfid))

    async def delete(self, volume: str, vfid: VFolderId) -> None:
        """Moves the folder to the trash, then removes it from there once the delete has
        committed. A vfid naming no folder here is already deleted; one naming a folder of
        another volume or scope is refused (nothing of it is touched)."""
        driver = self._volumes.get(volume)
        deleted_before = elsewhere = False

        def here(row: VFolderRow) -> None:
            nonlocal deleted_before, elsewhere
            if not belongs(VFolder.model_validate(row), volume, vfid):
                elsewhere = True
                raise _not_here(volume, vfid)
            deleted_before = row.status == VFolderStatus.DELETED.value

        async with transaction(self._runtime.sessions) as session:
            try:
                trashed = await self._vfolders(session).delete(
                    MANAGER_PRINCIPAL, vfid.folder_id, purge_later=False, precondition=here
                )
            except VFolderNotFound:
                if elsewhere:
                    raise
                return  # no such folder: deleted already
        if trashed is not None:
            await self._purge_now(volume, driver, trashed)
            return
        # Deleted before (its purge may be behind; a repeat has woken no purger yet: ask at
        # once) or it had no directory.
        await self._wait_purged(driver, vfid.folder_id, ask_now=deleted_before)

    async def _purge_now(self, volume: str, driver: VolumeDriver, trashed: TrashEntry) -> None:
        """The purge, done here rather than by the background pass: the Manager waits for it.
        It runs on (and is left to the background purge) if it fails, if it outlasts the
        Manager's wait, or if the Manager hangs up."""
        purge = asyncio.create_task(purge_deleted(driver, volume, trashed, self._runtime.metrics))
        _purges_running.add(purge)
        purge.add_done_callback(_purge_finished)
        done, _pending = await asyncio.wait(
            {purge}, timeout=self._runtime.settings.manager_api_sync_wait_seconds
        )
        if not done:
            raise OperationStillRunning(
                f"vfolder {trashed.vfolder_id} is deleted, but its files are still being purged",
                vfolder_id=str(trashed.vfolder_id),
            )
        if purge.exception() is not None:
            await self._runtime.scheduler.now(PURGE_TRASH, EVERY_VOLUME)
            await self._wait_purged(driver, trashed.vfolder_id, ask_now=False)

    async def clone(
        self, source_volume: str, source_vfid: VFolderId, target_volume: str, target: VFolderId
    ) -> None:
        """Our clone task copies (reflinks where the storage can); answered when it is done."""
        self._volumes.get(target_volume)
        async with transaction(self._runtime.sessions) as session:
            source = await find_vfolder(session, self._reader, source_volume, source_vfid)
            await self._scopes(session).ensure(target_volume, target.quota_scope, limit_bytes=None)
            task = await self._start_clone(session, source, target_volume, target)
            if task is None:
                return
            wake_after_commit(session, self._runtime.tasks)
        await self._wait_task(task.id, f"clone of {source_vfid} to {target}")

    async def _start_clone(
        self, session: AsyncSession, source: VFolder, volume: str, target: VFolderId
    ) -> TaskRow | None:
        """The clone's task; a repeated call for a clone under way rejoins its task, one for a
        clone done already finds nothing to do (None)."""
        existing = await VFolderRepository(session).get(target.folder_id)
        if (
            existing is not None
            and existing.cloned_from == source.id
            and belongs(VFolder.model_validate(existing), volume, target)
        ):
            if existing.status == VFolderStatus.READY.value:
                return None
            if existing.status == VFolderStatus.CLONING.value:
                return await submit(
                    session,
                    kind=CLONE_VFOLDER,
                    target=str(existing.id),
                    owner=owner_of(MANAGER_PRINCIPAL),
                )
        _row, task = await start_clone(
            session,
            MANAGER_PRINCIPAL,
            source.id,
            _create_request(volume, target),
            gate=self._runtime.access_gate,
            volumes=self._volumes,
            ledger=self._runtime.quota_ledger,
        )
        return task

    # -- reading ----------------------------------------------------------------------------

    async def mount_path(self, volume: str, vfid: VFolderId, subpath: str) -> str:
        """The vfolder's host path. The Manager appends ``subpath`` to it itself
        (``prepare_vfolder_mounts``), as the 23.09 proxy expects, so it is checked here: it
        must be a directory inside the vfolder reached without any symlink, or the Agent's
        bind mount would follow one out of it."""
        relative = parse_relative_path(subpath)
        async with transaction(self._runtime.sessions) as session:
            vfolder = await find_vfolder(session, self._reader, volume, vfid)
            mount = await self._vfolders(session).mount_info(MANAGER_PRINCIPAL, vfolder.id)
        if not relative.is_root:
            entry = await self._volumes.get(vfolder.volume).files.stat(vfolder.id, relative)
            if entry.type is EntryType.SYMLINK:
                raise SymlinkNotFollowed(f"{relative} is a symlink; it is never mounted")
            if entry.type is not EntryType.DIR:
                raise NotADirectory(f"{relative} is not a directory")
        return mount.host_path

    async def usage(self, volume: str, vfid: VFolderId) -> tuple[int, int]:
        """(used bytes, entries), as ``GET /v1/vfolders/{id}/usage`` answers them."""
        async with transaction(self._runtime.sessions) as session:
            vfolder = await find_vfolder(session, self._reader, volume, vfid)
            if vfolder.status is VFolderStatus.DELETED:  # the /v1 usage shows deleted ones
                raise VFolderDeleted(f"vfolder {vfid} is deleted", vfid=str(vfid))
            reader = services.usage_reader(self._runtime, session)
            usage = await reader.usage(MANAGER_PRINCIPAL, vfolder.id)
        return usage.used_bytes, usage.file_count

    # -- quota scopes -----------------------------------------------------------------------

    async def scope_usage(self, volume: str, qsid: QuotaScopeId) -> dict[str, int | None]:
        async with transaction(self._runtime.sessions) as session:
            return await self._scopes(session).usage(volume, qsid)

    async def set_scope_limit(self, volume: str, qsid: QuotaScopeId, limit: float | None) -> None:
        limit_bytes = limit_of(limit, field="limit_bytes")
        async with transaction(self._runtime.sessions) as session:
            await self._scopes(session).set_limit(volume, qsid, limit_bytes)

    async def vfolder_limit(self, volume: str, vfid: VFolderId) -> int | None:
        async with transaction(self._runtime.sessions) as session:
            vfolder = await find_vfolder(session, self._reader, volume, vfid)
            return await self._scopes(session).vfolder_limit(vfolder)

    async def set_vfolder_limit(self, volume: str, vfid: VFolderId, size: float) -> None:
        limit_bytes = limit_of(size, field="size_bytes")
        async with transaction(self._runtime.sessions) as session:
            vfolder = await find_vfolder(session, self._reader, volume, vfid)
            await self._scopes(session).set_vfolder_limit(vfolder, limit_bytes)

    # -- waiting ----------------------------------------------------------------------------

    async def _wait_purged(
        self, driver: VolumeDriver, vfolder_id: uuid.UUID, *, ask_now: bool
    ) -> None:
        deadline = time.monotonic() + self._runtime.settings.manager_api_sync_wait_seconds
        asked = time.monotonic() - (PURGE_AGAIN_SECONDS if ask_now else 0.0)
        pause = FIRST_POLL_SECONDS
        while await _on_disk(driver, vfolder_id):
            now = time.monotonic()
            if now >= deadline:
                raise OperationStillRunning(
                    f"vfolder {vfolder_id} is deleted, but its files are still being purged",
                    vfolder_id=str(vfolder_id),
                )
            if now - asked >= PURGE_AGAIN_SECONDS:
                await self._runtime.scheduler.now(PURGE_TRASH, EVERY_VOLUME)
                asked = now
            await anyio.sleep(pause)
            pause = min(pause * 2, MAX_POLL_SECONDS)

    async def _wait_task(self, task_id: uuid.UUID, what: str) -> None:
        bind_log_fields(task_id=str(task_id))
        deadline = time.monotonic() + self._runtime.settings.manager_api_sync_wait_seconds
        pause = FIRST_POLL_SECONDS
        while True:
            async with self._runtime.sessions() as session:
                task = await TaskRepository(session).get(task_id)
            if task is None:
                raise TaskNotFound(f"task {task_id} of the {what} is gone", task_id=str(task_id))
            state = TaskState(task.state)
            if state is TaskState.SUCCEEDED:
                return
            if state.final:
                raise OperationFailed(
                    f"{what} {state.value}: {_problem_detail(task.problem)}",
                    task_id=str(task_id),
                )
            if time.monotonic() >= deadline:
                raise OperationStillRunning(
                    f"{what} is still running as task {task_id}", task_id=str(task_id)
                )
            await anyio.sleep(pause)
            pause = min(pause * 2, MAX_POLL_SECONDS)


def _create_request(volume: str, vfid: VFolderId) -> VFolderCreate:
    scope = vfid.quota_scope
    return VFolderCreate(
        id=vfid.folder_id,
        name=vfid.generated_name,
        volume=volume,
        owner_type=scope.owner_type,
        owner_id=scope.owner_id,
    )


def _not_here(volume: str, vfid: VFolderId) -> VFolderNotFound:
    return VFolderNotFound(
        f"vfolder {vfid} not found on volume {volume!r}", vfid=str(vfid), volume=volume
    )


async def _on_disk(driver: VolumeDriver, vfolder_id: uuid.UUID) -> bool:
    """In place, or waiting in the trash for the purge."""
    if await driver.vfolder_exists(vfolder_id):
        return True
    return any(
        entry.vfolder_id == vfolder_id and not entry.holds_files
        for entry in await driver.list_trash()
    )


# Purges left running when their request stopped waiting: referenced until done.
_purges_running: set[asyncio.Task[None]] = set()


def _purge_finished(purge: asyncio.Task[None]) -> None:
    _purges_running.discard(purge)
    if not purge.cancelled() and (error := purge.exception()) is not None:
        log.warning(
            "purging a deleted folder failed; the background purge takes it over: %s", error
        )


def _problem_detail(problem: str | None) -> str:
    if problem is None:
        return "no reason recorded"
    try:
        body = json.loads(problem)
    except ValueError:
        return problem
    return str(body.get("detail") or body.get("title") or problem)
