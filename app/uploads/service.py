"""Resumable uploads (tus 1.0.0): the rules between the protocol, the upload records, the
usage ledger and the staging files.

Durability: a PATCH's bytes are fsynced before its offset is recorded and before it is
acknowledged (``app/uploads/progress.py``: at its end, every few MiB while it streams, and
when its client goes away, so what arrived is kept); bytes past the recorded offset (a writer
killed between two records) are cut back by the next writer, so the offset always equals what
is durably written. One writer at a time: an upload lease across nodes
(``app/uploads/locks.py``) and an exclusive lock on the staging file; the recorded offset is
re-read under both and advanced with a compare-and-set that only the latest lease holder's
fencing token passes. No database transaction is held while bytes flow."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, ParamSpec, TypeVar

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.principal import Principal
from app.auth.transfer import TransferOperation
from app.content.body_writer import write_body
from app.content.store import ContentStore
from app.errors import (
    ChecksumMismatch,
    DestinationExists,
    DomainError,
    InvalidRequest,
    OffsetMismatch,
    RepeatedPartialUpload,
    UnsupportedMediaType,
    UploadGone,
    UploadIsFinal,
    UploadLocked,
    UploadLockLost,
    UploadNotFound,
    UploadTooLarge,
)
from app.observability.context import bind_log_fields
from app.observability.logging import get_logger
from app.observability.metrics import Metrics
from app.permissions.access import AccessGate
from app.permissions.policy import VFolderOperation
from app.quotas.ledger import QuotaLedger, ReservationCover, upload_holder
from app.quotas.repository import QuotaRepository
from app.uploads.locks import UploadLease, UploadLocks
from app.uploads.models import UploadRow, UploadStatus
from app.uploads.progress import CHECKPOINT_BYTES, RecordedProgress
from app.uploads.protocol import (
    OFFSET_CONTENT_TYPE,
    Concat,
    ExpectedChecksum,
    parse_metadata,
)
from app.uploads.repository import UploadRepository
from app.vfolders.repository import VFolderRepository
from app.volumes.registry import VolumeRegistry
from drivers.base import Staged, VolumeDriver
from drivers.errors import DriverError, PathExists, PathNotFound
from drivers.paths import RelativePath, parse_relative_path
from drivers.types import Committed

log = get_logger(__name__)

# What happens to an upload whose destination exists (STORAGE_UPLOAD_COLLISION).
CollisionPolicy = Literal["fail", "replace", "rename"]
# How many times a renaming upload tries the next free name, as others take them first.
PLACEMENT_ATTEMPTS = 100
# How long creating a zero-length upload waits for the sweep that is placing it meanwhile.
EMPTY_PLACEMENT_WAIT_SECONDS = 10.0


P = ParamSpec("P")
R = TypeVar("R")

# The tus extensions this service implements, in the order they were declared: the OPTIONS
# answer is derived from this, never written by hand.
EXTENSIONS: list[str] = []


def implements(*names: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    def register(method: Callable[P, R]) -> Callable[P, R]:
        for name in names:
            if name not in EXTENSIONS:
                EXTENSIONS.append(name)
        return method

    return register


@dataclass(frozen=True, slots=True)
class UploadState:
    id: uuid.UUID
    vfolder_id: uuid.UUID
    destination: str
    offset: int
    length: int | None
    metadata_header: str
    expires_at: datetime
    completed: bool
    concat: str | None = None

    @classmethod
    def of(cls, row: UploadRow) -> UploadState:
        return cls(
            id=row.id,
            vfolder_id=row.vfolder_id,
            destination=row.destination,
            offset=row.offset,
            length=row.length,
            metadata_header=row.metadata_header,
            expires_at=row.expires_at,
            completed=row.status == UploadStatus.COMPLETED.value,
            concat=row.concat,
        )


def _owner(principal: Principal) -> str:
    return f"{principal.kind.value}:{principal.id}"


def _within_scope(principal: Principal, row: UploadRow) -> bool:
    """A transfer token acts as its minter but only within its scope, also on uploads."""
    scope = principal.transfer
    return scope is None or scope.covers(requested_destination(row))


def destination_of(metadata: dict[str, str], *, upload_id: uuid.UUID) -> RelativePath:
    """From ``path``, or ``filename`` into an optional ``dir``; without either (generic tus
    clients send no metadata), the upload's id in the vfolder root."""
    if "path" in metadata:
        rel = parse_relative_path(metadata["path"])
    elif "filename" in metadata:
        name = parse_relative_path(metadata["filename"])
        rel = RelativePath(parse_relative_path(metadata.get("dir", "")).parts + name.parts)
    else:
        return RelativePath((str(upload_id),))
    if rel.is_root:
        raise InvalidRequest("the destination must be a file below the vfolder root")
    return rel


def requested_destination(row: UploadRow) -> RelativePath:
    """Where the upload was asked to go: what a transfer token is checked against, also once
    the rename policy has sent the file elsewhere (``name (1).ext``)."""
    if row.concat == "partial":
        return parse_relative_path(row.destination)
    return destination_of(parse_metadata(row.metadata_header), upload_id=row.id)


def stated_overwrite(metadata: dict[str, str]) -> bool | None:
    """The upload's own ``overwrite`` choice; None when it states none."""
    if "overwrite" not in metadata:
        return None
    return metadata["overwrite"].lower() in {"1", "true", "yes"}


class TusService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        gate: AccessGate,
        volumes: VolumeRegistry,
        max_size: int,
        expire_after: timedelta,
        metrics: Metrics,
        locks: UploadLocks,
        quotas: QuotaLedger,
        collision: CollisionPolicy = "fail",
    ) -> None:
        self._collision: CollisionPolicy = collision
        self._quotas = quotas
        self._content = ContentStore(quotas)
        self._metrics = metrics
        self._locks = locks
        self._sessions = sessions
        self._gate = gate
        self._volumes = volumes
        self.max_size = max_size
        self._expire_after = expire_after
        # A reservation outlives its upload's expiry a little, so the reaper releases it.
        self._hold_for = expire_after + timedelta(hours=1)

    async def _driver(
        self, principal: Principal, vfolder_id: uuid.UUID, destination: RelativePath
    ) -> VolumeDriver:
        if principal.transfer is not None:
            principal.transfer.check(
                vfolder_id=vfolder_id, path=destination, operation=TransferOperation.UPLOAD
            )
        target = await self._gate.target(principal, vfolder_id, VFolderOperation.WRITE_FILES)
        bind_log_fields(operation="upload")
        return target.driver

    async def _load(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        upload_id: uuid.UUID,
        *,
        completed_ok: bool = False,
    ) -> tuple[UploadRow, VolumeDriver]:
        async with self._sessions() as session:
            row = await UploadRepository(session).get(upload_id)
        if row is None or row.vfolder_id != vfolder_id:
            raise UploadNotFound(f"upload {upload_id} not found")
        if row.owner != _owner(principal) and not principal.is_admin:
            raise UploadNotFound(f"upload {upload_id} not found")
        driver = await self._driver(principal, vfolder_id, requested_destination(row))
        usable = {UploadStatus.ACTIVE.value} | (
            {UploadStatus.COMPLETED.value} if completed_ok else set()
        )
        if row.status not in usable or (
            row.status == UploadStatus.ACTIVE.value and row.expires_at <= datetime.now(UTC)
        ):
            raise UploadGone(f"upload {upload_id} is {row.status}")
        return row, driver

    # -- creation ------------------------------------------------------------------------

    def _new_row(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        *,
        upload_id: uuid.UUID,
        destination: RelativePath,
        collision: CollisionPolicy,
        length: int | None,
        metadata_header: str,
        concat: str | None,
    ) -> UploadRow:
        return UploadRow(
            id=upload_id,
            vfolder_id=vfolder_id,
            owner=_owner(principal),
            destination=str(destination),
            overwrite=collision == "replace",
            rename_on_collision=collision == "rename",
            length=length,
            offset=0,
            metadata_header=metadata_header,
            status=UploadStatus.ACTIVE.value,
            concat=concat,
            expires_at=datetime.now(UTC) + self._expire_after,
        )

    def _collision_of(self, metadata: dict[str, str]) -> CollisionPolicy:
        """The upload's own ``overwrite`` choice, else the deployment's policy."""
        stated = stated_overwrite(metadata)
        if stated is None:
            return self._collision
        return "replace" if stated else "fail"

    @implements("creation", "creation-with-upload", "creation-defer-length", "expiration")
    async def create(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        *,
        length: int | None,
        metadata_header: str,
        body: AsyncIterator[bytes] | None,
        checksum: ExpectedChecksum | None,
        concat: Concat | None = None,
    ) -> UploadState:
        """``length`` None means deferred. With a body, it is the first PATCH."""
        if concat is not None and not concat.partial:
            return await self._create_final(principal, vfolder_id, metadata_header, concat)
        if length is not None and length > self.max_size:
            raise UploadTooLarge(f"Upload-Length exceeds Tus-Max-Size {self.max_size}")
        partial = concat is not None
        upload_id = uuid.uuid4()
        if partial:
            # A part has no place of its own; the final upload names the destination. One
            # made through a transfer token records the token's path: that token (and no
            # narrower one) can then resume it, list it and join it.
            destination = principal.transfer.path if principal.transfer else RelativePath(())
            collision = self._collision_of({})
            driver = await self._driver(principal, vfolder_id, destination)
        else:
            metadata = parse_metadata(metadata_header)
            destination = destination_of(metadata, upload_id=upload_id)
            collision = self._collision_of(metadata)
            driver = await self._driver(principal, vfolder_id, destination)
        if collision == "fail" and not partial:
            with contextlib.suppress(PathNotFound):
                await driver.files.stat(vfolder_id, destination)
                raise DestinationExists(f"{destination} exists (set overwrite to replace it)")
        row = self._new_row(
            principal,
            vfolder_id,
            upload_id=upload_id,
            destination=destination,
            collision=collision,
            length=length,
            metadata_header=metadata_header,
            concat="partial" if partial else None,
        )
        if length is not None:
            # The whole length, at creation: a client is refused before it sends a byte.
            await self._quotas.reserve(
                vfolder_id,
                holder=upload_holder(row.id),
                bytes=length,
                ttl=self._hold_for,
                fresh=True,
            )
        try:
            staged = await driver.files.open_staged(row.vfolder_id, row.staging_name, create=True)
            await staged.close()
            async with self._sessions() as session, session.begin():
                await UploadRepository(session).add(row)
                # Held by the upload from now on, not by this node: it outlives the node.
                await QuotaRepository(session).detach_reservation(upload_holder(row.id))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._quotas.release(upload_holder(row.id))
            raise
        log.info("upload created", extra={"upload_id": str(row.id), "length": length})
        if length == 0:
            return await self._place_empty(row, driver)
        if body is not None:
            return await self._append(row, driver, offset=0, body=body, checksum=checksum)
        return UploadState.of(row)

    @implements("concatenation")
    async def _create_final(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        metadata_header: str,
        concat: Concat,
    ) -> UploadState:
        """Joins completed partial uploads (in kernel, file to file) into the destination."""
        metadata = parse_metadata(metadata_header)
        upload_id = uuid.uuid4()
        destination = destination_of(metadata, upload_id=upload_id)
        driver = await self._driver(principal, vfolder_id, destination)
        parts: list[UploadRow] = []
        part_ids = [_upload_id_in(url, vfolder_id) for url in concat.parts]
        if len(set(part_ids)) != len(part_ids):
            # One part, one use: its bytes were reserved once (README, tus section).
            raise RepeatedPartialUpload("Upload-Concat lists the same partial upload twice")
        async with self._sessions() as session:
            for url, part_id in zip(concat.parts, part_ids, strict=True):
                part = await UploadRepository(session).get(part_id)
                if (
                    part is None
                    or part.vfolder_id != vfolder_id
                    or (part.owner != _owner(principal) and not principal.is_admin)
                    or part.concat != "partial"
                    or not _within_scope(principal, part)
                ):
                    raise InvalidRequest(f"{url} is not one of your partial uploads here")
                if part.status != UploadStatus.COMPLETED.value:
                    raise InvalidRequest(f"partial upload {url} is not complete")
                parts.append(part)
        length = sum(part.offset for part in parts)
        if length > self.max_size:
            raise UploadTooLarge(f"the parts exceed Tus-Max-Size {self.max_size}")
        row = self._new_row(
            principal,
            vfolder_id,
            upload_id=upload_id,
            destination=destination,
            collision=self._collision_of(metadata),
            length=length,
            metadata_header=metadata_header,
            concat="final;" + " ".join(concat.parts),
        )
        # The parts' reservations cover the joined file: they become the final upload's.
        await self._quotas.merge(
            [upload_holder(p.id) for p in parts], into=upload_holder(row.id), ttl=self._hold_for
        )
        staged = await driver.files.open_staged(row.vfolder_id, row.staging_name, create=True)
        try:
            await driver.files.concatenate_staged(staged, [p.staging_name for p in parts])
        finally:
            await staged.close()
        row.offset = length
        async with self._sessions() as session, session.begin():
            await UploadRepository(session).add(row)
        state = await self._finish(row, driver)
        for part in parts:  # consumed: their bytes now live in the destination
            await self._terminate_row(part, driver)
        return state

    # -- reading state ---------------------------------------------------------------------

    async def head(
        self, principal: Principal, vfolder_id: uuid.UUID, upload_id: uuid.UUID
    ) -> UploadState:
        # A finished upload still answers (offset = length), so a client that lost the last
        # acknowledgement learns it is done, and parts can be checked before the final.
        row, driver = await self._load(principal, vfolder_id, upload_id, completed_ok=True)
        if _received_in_full(row):
            # A node died between recording the last bytes and placing the file, and clients
            # take offset = length as done: whoever sees it first places it.
            try:
                return await self._finish_received(row, driver)
            except DestinationExists as exc:
                raise UploadGone(str(exc)) from None  # discarded, as its PATCH would have
            except (DomainError, DriverError):
                # HEAD still answers where the upload stands; the periodic sweep tries again.
                log.warning(
                    "could not place a fully received upload",
                    extra={"upload_id": str(row.id)},
                    exc_info=True,
                )
        return UploadState.of(row)

    async def finish_received(self, upload_id: uuid.UUID) -> bool:
        """Places an upload whose bytes were all recorded but whose writer died before placing
        it (what the start-up repair calls); True when it is placed now."""
        async with self._sessions() as session:
            row = await UploadRepository(session).get(upload_id)
            vfolder = await VFolderRepository(session).get(row.vfolder_id) if row else None
        if row is None or vfolder is None or not _received_in_full(row):
            return False
        state = await self._finish_received(row, self._volumes.get(vfolder.volume))
        return state.completed

    async def _place_empty(self, row: UploadRow, driver: VolumeDriver) -> UploadState:
        """A zero-length upload is complete at its creation. It is placed under the upload's
        lease, like any placement, and the sweep of fully received uploads may see its row
        as soon as it is committed and place it first: then this waits for that placement,
        so the 201 never comes before the file (bounded: past it, the state as it stands)."""
        deadline = anyio.current_time() + EMPTY_PLACEMENT_WAIT_SECONDS
        while True:
            state = await self._finish_received(row, driver)
            if state.completed or anyio.current_time() >= deadline:
                return state
            await anyio.sleep(0.02)

    async def _finish_received(self, row: UploadRow, driver: VolumeDriver) -> UploadState:
        """Under the upload's lease, like a PATCH (a live writer keeps it, and its own PATCH
        places the file): re-checks that every byte is recorded and in the staging file, then
        finishes the upload as that PATCH would have."""
        try:
            async with self._locks.hold(row.id):
                async with self._sessions() as session:
                    current = await UploadRepository(session).get(row.id)
                if current is None or not _received_in_full(current):
                    return UploadState.of(current or row)
                try:
                    staged = await driver.files.open_staged(
                        current.vfolder_id, current.staging_name, create=False
                    )
                except PathNotFound:
                    return UploadState.of(current)  # placed already; the repair counts it
                try:
                    if not await staged.try_lock():
                        return UploadState.of(current)  # a stalled writer of this node
                    if staged.size < (current.offset or 0):
                        log.error(
                            "an upload's staging file lacks recorded bytes; not placed",
                            extra={"upload_id": str(current.id), "size": staged.size},
                        )
                        return UploadState.of(current)
                    # Bytes past the recorded offset were never acknowledged.
                    await staged.truncate(current.offset)
                finally:
                    await staged.close()
                log.warning(
                    "placing an upload whose writer died after its last bytes",
                    extra={"upload_id": str(current.id)},
                )
                return await self._finish(current, driver)
        except UploadLocked:
            return UploadState.of(row)  # its writer is alive and places it itself

    async def unfinished(self, principal: Principal, vfolder_id: uuid.UUID) -> list[UploadState]:
        """The caller's unfinished uploads. A transfer token shares its minter's identity, not
        their view: it sees only uploads to the path (or below the prefix) it may write."""
        scope = principal.transfer
        if scope is not None:
            scope.check(vfolder_id=vfolder_id, path=scope.path, operation=TransferOperation.UPLOAD)
        await self._gate.target(principal, vfolder_id, VFolderOperation.WRITE_FILES)
        async with self._sessions() as session:
            rows = await UploadRepository(session).active_for(vfolder_id, _owner(principal))
        now = datetime.now(UTC)
        return [
            UploadState.of(row)
            for row in rows
            if row.expires_at > now and _within_scope(principal, row)
        ]

    # -- appending -------------------------------------------------------------------------

    @implements("checksum")
    async def patch(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        upload_id: uuid.UUID,
        *,
        offset: int,
        content_type: str | None,
        upload_length: int | None,
        body: AsyncIterator[bytes],
        checksum: ExpectedChecksum | None,
    ) -> UploadState:
        if content_type != OFFSET_CONTENT_TYPE:
            raise UnsupportedMediaType(f"Content-Type must be {OFFSET_CONTENT_TYPE}")
        row, driver = await self._load(principal, vfolder_id, upload_id, completed_ok=True)
        if row.concat is not None and row.concat.startswith("final;"):
            raise UploadIsFinal(f"upload {upload_id} is a final upload, made of its parts")
        if row.status == UploadStatus.COMPLETED.value:
            return await self._patch_completed(row, offset=offset, body=body)
        if upload_length is not None:
            row = await self._declare_length(row, upload_length)
        return await self._append(row, driver, offset=offset, body=body, checksum=checksum)

    @staticmethod
    async def _patch_completed(
        row: UploadRow, *, offset: int, body: AsyncIterator[bytes]
    ) -> UploadState:
        """An empty PATCH at a finished upload's end (what clients send for a zero-length
        file, or to confirm the end) is a no-op that succeeds; anything else has no place."""
        if offset != row.offset:
            raise OffsetMismatch(
                f"Upload-Offset {offset} does not match the upload's offset {row.offset}",
                offset=row.offset,
            )
        async for chunk in body:
            if chunk:
                raise UploadGone(f"upload {row.id} is finished; it takes no more bytes")
        return UploadState.of(row)

    async def _declare_length(self, row: UploadRow, length: int) -> UploadRow:
        if row.length is not None:
            if row.length != length:
                raise InvalidRequest("Upload-Length cannot change once known")
            return row
        if length > self.max_size:
            raise UploadTooLarge(f"Upload-Length exceeds Tus-Max-Size {self.max_size}")
        if length < row.offset:
            raise InvalidRequest("Upload-Length is below what was already uploaded")
        # Its reservation grew in steps ahead of the bytes; now it is the length, like a
        # known length's: topped up, or cut down so that it holds no room it will not use.
        await self._quotas.resize(
            row.vfolder_id, holder=upload_holder(row.id), bytes=length, ttl=self._hold_for
        )
        async with self._sessions() as session, session.begin():
            fresh = await UploadRepository(session).get(row.id)
            assert fresh is not None
            fresh.length = length
        row.length = length
        return row

    async def _append(
        self,
        row: UploadRow,
        driver: VolumeDriver,
        *,
        offset: int,
        body: AsyncIterator[bytes],
        checksum: ExpectedChecksum | None,
    ) -> UploadState:
        async with self._locks.hold(row.id) as lease:
            held_here = False
            try:
                staged = await driver.files.open_staged(
                    row.vfolder_id, row.staging_name, create=False
                )
            except PathNotFound:
                raise UploadGone(f"upload {row.id} has no staging file any more") from None
            try:
                # The lease keeps other nodes out; the kernel lock on the file also keeps out
                # a writer of this node that stalled past its lease and has not noticed yet.
                if not await staged.try_lock():
                    raise UploadLocked(f"upload {row.id} is being written by another request")
                # Under the lock, the recorded offset is the truth; bytes past it were never
                # acknowledged (a writer died mid-PATCH) and are cut off.
                async with self._sessions() as session:
                    current = await UploadRepository(session).get(row.id)
                if current is None or current.status != UploadStatus.ACTIVE.value:
                    raise UploadGone(f"upload {row.id} is no longer active")
                if offset != current.offset:
                    raise OffsetMismatch(
                        f"Upload-Offset {offset} does not match the upload's offset "
                        f"{current.offset}",
                        offset=current.offset,
                    )
                await staged.truncate(current.offset)
                limit = current.length if current.length is not None else self.max_size
                holder = upload_holder(row.id)
                # A known length is reserved whole (at creation, or when declared; again
                # here if it was released with a dead node); a deferred one reserves as its
                # bytes arrive, ahead of what it holds already. This node holds it while the
                # PATCH runs: if the node dies, it is released as soon as that is known.
                held = await self._quotas.hold(
                    row.vfolder_id, holder=holder, at_least=current.length or 0, ttl=self._hold_for
                )
                held_here = True
                cover = ReservationCover(
                    self._quotas, row.vfolder_id, holder, covered=held - offset
                )
                progress = RecordedProgress(
                    self._sessions,
                    staged,
                    lease,
                    offset=offset,
                    # A checksummed PATCH is all or nothing: only its end may record it.
                    checkpoint_every=None if checksum else CHECKPOINT_BYTES,
                )
                try:
                    with self._metrics.uploads_in_flight.track_inprogress():
                        await self._write_body(
                            staged,
                            body,
                            room=limit - offset,
                            checksum=checksum,
                            progress=progress,
                            lease=lease,
                            # A deferred length reserves as it goes; a known one is covered.
                            cover=cover,
                        )
                finally:
                    self._metrics.upload_bytes.inc(progress.recorded - offset)
                row.offset = progress.recorded
                row.length = current.length
            finally:
                await staged.close()
                if held_here:
                    with anyio.CancelScope(shield=True):
                        await self._quotas.detach(upload_holder(row.id))
            # Still under the lease, so a HEAD elsewhere never places it at the same time.
            if row.length is not None and row.offset == row.length:
                return await self._finish(row, driver)
        return UploadState.of(row)

    async def _write_body(
        self,
        staged: Staged,
        body: AsyncIterator[bytes],
        *,
        room: int,
        checksum: ExpectedChecksum | None,
        progress: RecordedProgress,
        lease: UploadLease,
        cover: ReservationCover,
    ) -> None:
        """Stream the body to the staging file in large writes, recording the offset as it
        goes (``RecordedProgress``). A client that goes away keeps everything it delivered;
        a PATCH refused by the server (too many bytes, quota, checksum) is cut back to what
        was recorded before it: for a checksummed PATCH, to where it began."""
        hasher = checksum.hasher() if checksum else None
        interrupted = False

        async def watched_body() -> AsyncIterator[bytes]:
            nonlocal interrupted
            try:
                async for chunk in body:
                    yield chunk
            except GeneratorExit:
                raise  # closed by its reader, which stopped for a reason of its own
            except BaseException:
                interrupted = True  # the client went away, or stopped sending
                raise

        try:
            await write_body(
                staged,
                watched_body(),
                room=room,
                too_large=lambda: UploadTooLarge(
                    "the body goes beyond Upload-Length or Tus-Max-Size"
                ),
                hasher=hasher,
                before_write=lease.check,
                on_batch=cover,
                after_write=progress.checkpoint,
                keep_received=checksum is None,
            )
            if checksum is not None and hasher is not None and hasher.digest() != checksum.digest:
                raise ChecksumMismatch(f"{checksum.algorithm} of the PATCH body does not match")
            await progress.record()
        except UploadLockLost:
            raise  # the file may be another writer's by now: leave it to them
        except BaseException as exc:
            cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
            with anyio.CancelScope(shield=True):
                if checksum is None and (interrupted or cancelled):
                    await self._keep_received(progress, staged)
                else:
                    with contextlib.suppress(OSError):
                        await staged.truncate(progress.recorded)
            raise

    @staticmethod
    async def _keep_received(progress: RecordedProgress, staged: Staged) -> None:
        """The client left mid-PATCH: what reached the file becomes the upload's offset."""
        try:
            await progress.record()
        except UploadLockLost:
            return  # another writer owns the file now; it cuts it back to the recorded offset
        except Exception:
            log.warning("could not keep an interrupted PATCH's bytes", exc_info=True)
            with contextlib.suppress(OSError):
                await staged.truncate(progress.recorded)
            return
        log.info(
            "interrupted PATCH kept",
            extra={"upload_id": str(progress.upload_id), "offset": progress.recorded},
        )

    async def _finish(self, row: UploadRow, driver: VolumeDriver) -> UploadState:
        """All bytes are in: a part waits for its final upload, a file goes into place."""
        if row.concat == "partial":
            # Complete, but placed nowhere: it waits (until it expires) for a final upload.
            async with self._sessions() as session, session.begin():
                upload = await UploadRepository(session).get(row.id)
                assert upload is not None
                upload.status = UploadStatus.COMPLETED.value
            row.status = UploadStatus.COMPLETED.value
            return UploadState.of(row)
        staged = await driver.files.open_staged(row.vfolder_id, row.staging_name, create=False)
        try:
            destination = await self._place_somewhere(row, driver, staged)
        except PathExists:
            await staged.close()
            await self._terminate_row(row, driver)
            raise DestinationExists(
                f"{row.destination} appeared meanwhile; upload discarded"
            ) from None
        except BaseException:
            await staged.close()
            raise
        row.destination = str(destination)
        log.info("upload completed", extra={"upload_id": str(row.id), "path": row.destination})
        row.status = UploadStatus.COMPLETED.value
        return UploadState.of(row)

    async def _place_somewhere(
        self, row: UploadRow, driver: VolumeDriver, staged: Staged
    ) -> RelativePath:
        """Places the file at its destination; under the rename policy, at the first free
        name, moving on when another upload racing for it got there first."""
        if not row.rename_on_collision:
            destination = parse_relative_path(row.destination)
            await self._place(row, driver, staged, destination)
            return destination
        for _ in range(PLACEMENT_ATTEMPTS):
            destination = await self._free_destination(row, driver)
            try:
                await self._place(row, driver, staged, destination)
            except PathExists:
                continue  # taken since it was found free
            return destination
        raise PathExists(f"{row.destination} was taken each time this upload got there")

    async def _free_destination(self, row: UploadRow, driver: VolumeDriver) -> RelativePath:
        """The rename policy's place for the file: the first free one of the requested name
        and its numbered alternatives, recorded on the upload before the file goes there. A
        process that dies between that placement and its commit leaves the upload naming the
        very file it placed, which ``repair_interrupted_completions`` then counts."""
        destination = await driver.files.free_name(row.vfolder_id, requested_destination(row))
        if str(destination) != row.destination:
            async with self._sessions() as session, session.begin():
                upload = await UploadRepository(session).get(row.id)
                assert upload is not None
                upload.destination = str(destination)
            row.destination = str(destination)
        return destination

    async def _place(
        self, row: UploadRow, driver: VolumeDriver, staged: Staged, destination: RelativePath
    ) -> None:
        """Rename into place and count the usage in one transaction that also marks the
        upload completed: a crash leaves either nothing done or everything done."""

        async def completed(session: AsyncSession, _committed: Committed) -> None:
            upload = await UploadRepository(session).get(row.id)
            assert upload is not None
            upload.status = UploadStatus.COMPLETED.value
            upload.destination = str(destination)

        await self._content.commit(
            driver.files,
            row.vfolder_id,
            destination,
            staged,
            replace=row.overwrite,
            parents=True,
            holder=upload_holder(row.id),
            also=completed,
        )

    # -- termination -----------------------------------------------------------------------

    @implements("termination")
    async def terminate(
        self, principal: Principal, vfolder_id: uuid.UUID, upload_id: uuid.UUID
    ) -> None:
        row, driver = await self._load(principal, vfolder_id, upload_id, completed_ok=True)
        if row.status == UploadStatus.COMPLETED.value and row.concat != "partial":
            # Its file is in place and is the vfolder's now: only the upload is forgotten.
            await self._forget_row(row)
            return
        await self._terminate_row(row, driver)

    async def _forget_row(self, row: UploadRow) -> None:
        async with self._sessions() as session, session.begin():
            upload = await UploadRepository(session).get(row.id)
            if upload is not None:
                upload.status = UploadStatus.TERMINATED.value

    async def _terminate_row(self, row: UploadRow, driver: VolumeDriver) -> None:
        async with self._sessions() as session, session.begin():
            upload = await UploadRepository(session).get(row.id)
            if upload is not None:
                upload.status = UploadStatus.TERMINATED.value
            await QuotaRepository(session).drop_reservation(upload_holder(row.id))
        await driver.files.remove_staged(row.vfolder_id, row.staging_name)


def _received_in_full(row: UploadRow) -> bool:
    """Every byte recorded, yet still active: its writer died before placing the file."""
    return (
        row.status == UploadStatus.ACTIVE.value
        and row.length is not None
        and row.offset == row.length
        and not (row.concat or "").startswith("final;")
    )


def _upload_id_in(url: str, vfolder_id: uuid.UUID) -> uuid.UUID:
    """The upload id of a Location URL (absolute or relative) of this vfolder's uploads."""
    path = url.split("://", 1)[-1]
    path = path[path.find("/") :] if "://" in url else path
    prefix = f"/v1/vfolders/{vfolder_id}/uploads/"
    if not path.startswith(prefix):
        raise InvalidRequest(f"{url} is not an upload of this vfolder")
    try:
        return uuid.UUID(path.removeprefix(prefix).split("?", 1)[0])
    except ValueError:
        raise InvalidRequest(f"{url} is not an upload URL") from None
