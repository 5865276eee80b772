"""Cloning a vfolder: the new vfolder is created `cloning` with a quota reservation of the
source's size, and a task copies the content (the driver's fast clone where it has one, else
reflinks or kernel copies, in parallel) into the volume's private staging area, then moves it
into place and turns the vfolder `ready` with its usage recorded, in one step.

The task is idempotent: a node taking it over wipes the half-copied staging tree and starts
again. A failed clone leaves nothing behind: staging tree removed, vfolder marked deleted (its
name free again), reservation released."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import anyio
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.principal import Principal
from app.content.store import ContentStore
from app.errors import InvalidRequest, VFolderIdConflict, VFolderNameConflict, VFolderNotFound
from app.observability.logging import get_logger
from app.permissions.access import AccessGate
from app.permissions.policy import Owner, VFolderOperation, authorize_chosen_id, authorize_create
from app.quotas.ledger import QuotaLedger, VFolderChange
from app.tasks.models import TaskRow
from app.tasks.runner import TaskContext, TaskHandler
from app.tasks.service import owner_of, submit
from app.vfolders.models import VFolderRow, VFolderStatus
from app.vfolders.repository import DuplicateVFolder, VFolderRepository
from app.vfolders.schemas import VFolderCreate
from app.vfolders.service import resolve_owner
from app.volumes.registry import VolumeRegistry
from drivers.base import VolumeDriver
from drivers.paths import display_text
from drivers.types import CloneProgress, VFolderOwner

log = get_logger(__name__)

CLONE_VFOLDER = "clone-vfolder"
REPORT_EVERY_SECONDS = 0.2


class CloneResult(BaseModel):
    vfolder_id: uuid.UUID
    bytes: int
    entries: int
    reflinked_files: int = Field(description="Files whose data is shared, not copied.")
    skipped: list[str] = Field(
        description="Sockets, devices, FIFOs: not cloned (bytes of a path that are not UTF-8 "
        "show as U+FFFD)."
    )


def clone_holder(vfolder_id: uuid.UUID) -> str:
    return f"clone:{vfolder_id.hex}"


async def start_clone(
    session: AsyncSession,
    principal: Principal,
    source_id: uuid.UUID,
    request: VFolderCreate,
    *,
    gate: AccessGate,
    volumes: VolumeRegistry,
    ledger: QuotaLedger,
) -> tuple[VFolderRow, TaskRow]:
    """In the request's transaction: the new vfolder (`cloning`), its reservation, its task."""
    authorize_chosen_id(principal, request.id)
    source, _ = await gate.authorize(session, principal, source_id, VFolderOperation.READ)
    volumes.get(request.volume)  # an unknown volume is refused now, not in the task
    owner = resolve_owner(principal, request)
    authorize_create(principal, owner)
    repository = VFolderRepository(session)
    source_row = await repository.get(source.id)
    if source_row is None:
        raise VFolderNotFound(f"vfolder {source_id} not found")
    target = VFolderRow(
        id=request.id or uuid.uuid4(),
        name=request.name,
        volume=request.volume,
        owner_type=owner.type,
        owner_id=owner.id,
        status=VFolderStatus.CLONING.value,
        cloned_from=source.id,
    )
    target = await _add_clone_target(repository, target, owner)
    await ledger.reserve_in(
        session,
        target,
        holder=clone_holder(target.id),
        bytes=source_row.used_bytes,
        files=source_row.file_count,
        fresh=True,
        durable=True,  # the task's, whichever node runs it
    )
    task = await submit(
        session, kind=CLONE_VFOLDER, target=str(target.id), owner=owner_of(principal)
    )
    log.info("clone queued", extra={"vfolder_id": str(target.id), "source": str(source.id)})
    return target, task


async def _add_clone_target(
    repository: VFolderRepository, target: VFolderRow, owner: Owner
) -> VFolderRow:
    """Insert the new vfolder; a taken id or live name is a 409, as for a create. (A clone is
    not replayed like a create: an id already used, even by this very clone, is a conflict.)"""
    if await repository.get(target.id) is not None:
        raise _id_conflict(target.id)
    try:
        return await repository.add(target)
    except DuplicateVFolder:
        # Lost a race with a concurrent create or clone of that id or name.
        if await repository.get(target.id) is not None:
            raise _id_conflict(target.id) from None
        raise VFolderNameConflict(
            f"{owner.type} {owner.id!r} already has a vfolder named {target.name!r}",
            name=target.name,
            owner_type=owner.type,
            owner_id=owner.id,
        ) from None


def _id_conflict(vfolder_id: uuid.UUID) -> VFolderIdConflict:
    return VFolderIdConflict(
        f"vfolder id {vfolder_id} is already used by a different vfolder",
        vfolder_id=str(vfolder_id),
    )


def clone_handler(
    sessions: async_sessionmaker[AsyncSession], volumes: VolumeRegistry, ledger: QuotaLedger
) -> TaskHandler:
    async def clone(task: TaskContext) -> BaseModel:
        target_id = uuid.UUID(task.target)
        async with sessions() as session:
            repository = VFolderRepository(session)
            target = await repository.get(target_id)
            source = (
                await repository.get(target.cloned_from) if target and target.cloned_from else None
            )
        if target is None or source is None:
            raise VFolderNotFound(f"clone {target_id}: the vfolder or its source is gone")
        if target.status == VFolderStatus.READY.value:  # done by a node that died after it
            return CloneResult(
                vfolder_id=target_id,
                bytes=target.used_bytes,
                entries=target.file_count,
                reflinked_files=0,
                skipped=[],
            )
        if target.status != VFolderStatus.CLONING.value:
            raise InvalidRequest(f"vfolder {target_id} is {target.status}, not cloning")
        source_driver = volumes.get(source.volume)
        target_driver = volumes.get(target.volume)
        try:
            return await _copy_and_finish(task, source, target, source_driver, target_driver)
        except BaseException as exc:
            # Undone when it failed or its owner cancelled it; left for the next attempt when
            # this node stops or lost the task to another node.
            if (isinstance(exc, Exception) or task.cancel_requested) and not task.lease_lost:
                with anyio.CancelScope(shield=True):
                    await _abandon(sessions, ledger, target, target_driver)
            raise

    async def _copy_and_finish(
        task: TaskContext,
        source: VFolderRow,
        target: VFolderRow,
        source_driver: VolumeDriver,
        target_driver: VolumeDriver,
    ) -> CloneResult:
        progress = CloneProgress()
        # Places the target where its owner's vfolders go (a layout by owner needs that before
        # anything is copied); the copy below replaces the empty directory.
        await target_driver.create_vfolder(
            target.id, owner=VFolderOwner(target.owner_type, target.owner_id)
        )
        if source.volume == target.volume and source_driver.clone is not None:
            await source_driver.clone.clone_vfolder(source.id, target.id)
        else:
            await _copy_reporting(task, source, target, source_driver, target_driver, progress)
        walked_from = datetime.now(UTC)

        async def turn_ready(change: VFolderChange) -> None:
            # The ledger starts from a walk of the copy: as true as a scan's.
            await VFolderRepository(change.session).mark_ready(
                target.id, usage_scanned_at=walked_from
            )

        usage = await ContentStore(ledger).commit_copy(
            target_driver.files, target.id, holder=clone_holder(target.id), also=turn_ready
        )
        await task.report(usage.bytes, usage.bytes, "bytes")
        log.info("clone finished", extra={"vfolder_id": str(target.id), "bytes": usage.bytes})
        return CloneResult(
            vfolder_id=target.id,
            bytes=usage.bytes,
            entries=usage.entries,
            reflinked_files=progress.reflinked,
            # A name made through a mount may not be UTF-8: shown with U+FFFD, as listings do.
            skipped=[display_text(path) for path in progress.skipped],
        )

    return clone


async def _copy_reporting(
    task: TaskContext,
    source: VFolderRow,
    target: VFolderRow,
    source_driver: VolumeDriver,
    target_driver: VolumeDriver,
    progress: CloneProgress,
) -> None:
    """The copy runs in a worker thread; its progress is reported from here meanwhile."""
    async with anyio.create_task_group() as group:

        async def report() -> None:
            while True:
                await task.report(progress.bytes_done, source.used_bytes, "bytes")
                await anyio.sleep(REPORT_EVERY_SECONDS)

        group.start_soon(report)
        await target_driver.files.receive_copy(
            source_driver.vfolder_path(source.id),
            target.id,
            progress,
            skip=source_driver.files.reserved_names,  # the source's own staging, not files
        )
        group.cancel_scope.cancel()


async def _abandon(
    sessions: async_sessionmaker[AsyncSession],
    ledger: QuotaLedger,
    target: VFolderRow,
    driver: VolumeDriver,
) -> None:
    """Nothing of a failed clone stays: its files, its row (marked deleted), its reservation."""
    try:
        await driver.files.discard_copy(target.id)
        async with sessions() as session, session.begin():
            row = await VFolderRepository(session).get(target.id)
            if row is not None and row.status == VFolderStatus.CLONING.value:
                row.status = VFolderStatus.DELETED.value
                row.deleted_at = datetime.now(UTC)
        await ledger.release(clone_holder(target.id))
    except Exception:
        log.exception("cleaning up after a failed clone of %s", target.id)
