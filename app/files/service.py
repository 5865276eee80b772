"""Files inside a vfolder: the rules between the API, the usage ledger and the driver's safe
file operations.

No database connection is held while bytes flow: metadata work happens in short
transactions before (access check) and after (ledger) a transfer. Every change to the
vfolder's content happens inside ``_ledger``, which locks the vfolder's row, so the usage
delta measured on disk and the ledger update are one serialised step per vfolder, on every
node."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from app.auth.principal import Principal
from app.auth.transfer import TransferMinter, TransferOperation
from app.content.body_writer import BATCH_BYTES, received_whole, write_body
from app.content.foresight import foreseen_store
from app.content.store import ContentStore
from app.errors import (
    InsufficientStorage,
    InvalidRequest,
    Problem,
    driver_problem,
)
from app.files.form_stream import FileData, FileEnd, FileStart, file_events
from app.files.http_conditions import etag_of
from app.files.raw_paths import percent_decoded
from app.files.schemas import (
    DeleteResult,
    DeleteResults,
    FileInfo,
    TransferToken,
    TransferTokenCreate,
    UploadedFile,
    UploadedFiles,
)
from app.observability.logging import get_logger
from app.pagination import CursorSealer, Listing, principal_key, refused_cursor
from app.permissions.access import AccessGate, Target
from app.permissions.policy import NEEDED_MODE, VFolderOperation
from app.quotas.ledger import QuotaLedger, ReservationCover, write_holder
from drivers.base import Readable, Staged, VFolderFiles
from drivers.errors import DriverError, NotADirectory, PathExists, UnsafePath
from drivers.paths import (
    MAX_PATH_BYTES,
    RelativePath,
    display_text,
    parse_relative_path,
    require_single_name,
)
from drivers.types import Committed, EntryType, FileEntry, FileVersion, Usage

log = get_logger(__name__)

LISTING_BATCH = 1000
# A path of MAX_PATH_BYTES has at most this many components (each one byte and a '/').
MAX_CURSOR_DEPTH = MAX_PATH_BYTES // 2


# A body of a known length up to this (one write batch) is received whole and is not reserved
# for before it is staged.
UNRESERVED_WRITE_BYTES = BATCH_BYTES


class FilesService:
    def __init__(
        self,
        *,
        gate: AccessGate,
        minter: TransferMinter,
        quotas: QuotaLedger,
        cursors: CursorSealer,
    ) -> None:
        self._cursors = cursors
        self._quotas = quotas
        self._content = ContentStore(quotas)
        self._gate = gate
        self._minter = minter

    @staticmethod
    def _within_transfer_scope(
        principal: Principal,
        vfolder_id: uuid.UUID,
        path: RelativePath,
        operation: TransferOperation,
    ) -> None:
        if principal.transfer is not None:
            principal.transfer.check(vfolder_id=vfolder_id, path=path, operation=operation)

    async def create_transfer_token(
        self, principal: Principal, vfolder_id: uuid.UUID, request: TransferTokenCreate
    ) -> TransferToken:
        """Checked against the caller's rights now, and again at every use."""
        needed = (
            VFolderOperation.READ
            if request.operation is TransferOperation.DOWNLOAD
            else VFolderOperation.WRITE_FILES
        )
        await self._gate.target(principal, vfolder_id, needed)
        rel = parse_relative_path(request.path)
        token, jti, expires = self._minter.mint(
            minter=principal,
            vfolder_id=vfolder_id,
            path=rel,
            prefix=request.prefix,
            operation=request.operation,
            ttl_seconds=request.ttl_seconds,
        )
        url = None
        if not request.prefix and not rel.is_root:
            url = f"/v1/vfolders/{vfolder_id}/files/{quote(str(rel))}?token={token}"
        log.info(
            "transfer token minted",
            extra={"audit": True, "jti": jti, "transfer": request.operation.value},
        )
        return TransferToken(
            token=token,
            jti=jti,
            operation=request.operation,
            path=str(rel),
            prefix=request.prefix,
            expires_at=datetime.fromtimestamp(expires, UTC),
            url=url,
        )

    # -- reading ---------------------------------------------------------------------------

    async def stat(self, principal: Principal, vfolder_id: uuid.UUID, path: str) -> FileInfo:
        target = await self._gate.target(principal, vfolder_id, VFolderOperation.READ)
        rel = parse_relative_path(path, existing=True)
        return FileInfo.of(await target.driver.files.stat(vfolder_id, rel))

    async def list_dir(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        path: str,
        *,
        recursive: bool,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[FileEntry], str | None]:
        """One page of entries and the cursor of the next page (None on the last)."""
        target = await self._gate.target(principal, vfolder_id, VFolderOperation.READ)
        rel = parse_relative_path(path, existing=True)
        listing = _listing(principal, vfolder_id, rel, recursive=recursive)
        after = None
        if cursor is not None:
            after = resume_point(self._cursors.open(cursor, listing=listing, keys=("after",)))
        entries, more = await target.driver.files.list_page(
            vfolder_id, rel, after=after, recursive=recursive, limit=limit
        )
        next_cursor = None
        if more and entries:
            position = entries[-1].path.parts[len(rel.parts) :]
            next_cursor = self._cursors.seal({"after": list(position)}, listing=listing)
        return entries, next_cursor

    async def open_listing(
        self, principal: Principal, vfolder_id: uuid.UUID, path: str, *, recursive: bool
    ) -> AsyncIterator[list[FileEntry]]:
        """Batches of a whole listing, for NDJSON. Checks everything that can fail up front,
        so that the answer is a proper problem rather than a broken stream."""
        target = await self._gate.target(principal, vfolder_id, VFolderOperation.READ)
        rel = parse_relative_path(path, existing=True)
        top = await target.driver.files.stat(vfolder_id, rel)
        if top.type is not EntryType.DIR:
            raise NotADirectory(f"{rel or '/'} is not a directory")
        return target.driver.files.listing(
            vfolder_id, rel, recursive=recursive, batch=LISTING_BATCH
        )

    async def open_download(
        self, principal: Principal, vfolder_id: uuid.UUID, path: str
    ) -> tuple[Readable, str]:
        """The file open for reading, and its name."""
        rel = parse_relative_path(path, existing=True)
        self._within_transfer_scope(principal, vfolder_id, rel, TransferOperation.DOWNLOAD)
        target = await self._gate.target(principal, vfolder_id, VFolderOperation.READ)
        return await self._content.open_read(target.driver.files, vfolder_id, rel), rel.name

    # -- writing ---------------------------------------------------------------------------

    async def upload(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        path: str,
        body: AsyncIterator[bytes],
        *,
        replace: bool,
        if_match: FileVersion | None,
        parents: bool,
        content_length: int | None,
    ) -> UploadedFile:
        rel = parse_relative_path(path)
        self._within_transfer_scope(principal, vfolder_id, rel, TransferOperation.UPLOAD)
        target = await self._gate.target(principal, vfolder_id, VFolderOperation.WRITE_FILES)
        if content_length is not None:
            capacity = await target.driver.capacity()
            if content_length > capacity.free_bytes:
                raise InsufficientStorage(
                    f"{content_length} bytes do not fit in the {capacity.free_bytes} bytes "
                    f"free on volume {target.vfolder.volume}",
                    requested_bytes=content_length,
                    free_bytes=capacity.free_bytes,
                )
        committed = await self._store(
            target,
            rel,
            body,
            replace=replace,
            if_match=if_match,
            parents=parents,
            content_length=content_length,
        )
        return UploadedFile(
            path=str(rel),
            size=committed.added.bytes,
            etag=etag_of(committed.version),
            created=committed.replaced == Usage(),
        )

    async def upload_form(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        directory: str,
        body: AsyncIterator[bytes],
        *,
        boundary: bytes,
        replace: bool,
        parents: bool,
    ) -> UploadedFiles:
        """Each file part of a multipart/form-data body lands at ``directory``/its filename
        (a relative path is kept, as browsers send for folder uploads)."""
        target = await self._gate.target(principal, vfolder_id, VFolderOperation.WRITE_FILES)
        base = parse_relative_path(directory)
        uploaded: list[UploadedFile] = []
        events = file_events(body, boundary=boundary)
        async for event in events:
            if not isinstance(event, FileStart):
                continue
            if not event.filename:
                continue  # an empty file input: browsers send it with no name
            rel = RelativePath(base.parts + parse_relative_path(event.filename).parts)
            self._within_transfer_scope(principal, vfolder_id, rel, TransferOperation.UPLOAD)
            committed = await self._store(
                target,
                rel,
                _part_data(events),
                replace=replace,
                if_match=None,
                parents=parents,
            )
            uploaded.append(
                UploadedFile(
                    path=str(rel),
                    size=committed.added.bytes,
                    etag=etag_of(committed.version),
                    created=committed.replaced == Usage(),
                )
            )
        return UploadedFiles(items=uploaded)

    async def _store(
        self,
        target: Target,
        rel: RelativePath,
        body: AsyncIterator[bytes],
        *,
        replace: bool,
        if_match: FileVersion | None,
        parents: bool,
        content_length: int | None = None,
    ) -> Committed:
        """Stream ``body`` into a staging file, then commit it and the ledger together."""
        files = target.driver.files
        vfolder_id = target.vfolder.id
        if rel.is_root:
            raise NotADirectory("the vfolder root is a directory, not a file")
        if content_length is not None and content_length <= UNRESERVED_WRITE_BYTES:
            # At most one write batch: received whole, then staged and synced in one step,
            # and checked at its commit only, which weighs its whole growth under the
            # vfolder's lock. No reservation's transaction first; nothing of a refused one
            # remains.
            committed = await self._content.store(
                files,
                vfolder_id,
                rel,
                await received_whole(body, limit=content_length),
                replace=replace,
                parents=parents,
                if_match=if_match,
            )
        else:
            committed = await self._store_streamed(
                files,
                vfolder_id,
                rel,
                body,
                replace=replace,
                if_match=if_match,
                parents=parents,
                content_length=content_length,
            )
        log.info("file stored", extra={"path": str(rel), "size": committed.added.bytes})
        return committed

    async def _store_streamed(
        self,
        files: VFolderFiles,
        vfolder_id: uuid.UUID,
        rel: RelativePath,
        body: AsyncIterator[bytes],
        *,
        replace: bool,
        if_match: FileVersion | None,
        parents: bool,
        content_length: int | None,
    ) -> Committed:
        holder = write_holder()
        cover = ReservationCover(self._quotas, vfolder_id, holder)
        if content_length is not None:
            # Known up front: reserved at once (only the growth over a file it replaces), so
            # concurrent writers are refused before any byte is written, not half-way.
            foreseen = await foreseen_store(
                files, vfolder_id, rel, content_length, replace=replace, parents=parents
            )
            await self._quotas.reserve(
                vfolder_id,
                holder=holder,
                bytes=foreseen.bytes,
                files=foreseen.entries,
                fresh=True,
            )
            cover.covered = content_length

        async def fill(staged: Staged) -> None:
            await write_body(staged, body, on_batch=cover)

        return await self._content.store(
            files,
            vfolder_id,
            rel,
            fill,
            replace=replace,
            parents=parents,
            if_match=if_match,
            holder=holder,
        )

    async def mkdir(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        path: str,
        *,
        parents: bool,
        exist_ok: bool,
    ) -> FileInfo:
        target, rel = await self.make_directory(
            principal, vfolder_id, path, parents=parents, exist_ok=exist_ok
        )
        return FileInfo.of(await target.driver.files.stat(vfolder_id, rel))

    async def make_directory(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        path: str,
        *,
        parents: bool,
        exist_ok: bool,
    ) -> tuple[Target, RelativePath]:
        """``mkdir`` without describing the result (the Manager's call answers 204): the
        vfolder it was made in and the directory's parsed path."""
        target = await self._gate.target(principal, vfolder_id, VFolderOperation.WRITE_FILES)
        rel = parse_relative_path(path)
        await self._quotas.change_together(
            vfolder_id, _DirectoryMaking(target.driver.files, vfolder_id, rel, parents, exist_ok)
        )
        return target, rel

    async def move(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        source: str,
        destination: str,
        *,
        overwrite: bool,
        percent_encoded: bool = False,
    ) -> FileInfo:
        """The source may be a name that is not UTF-8 (moving it to a good one is how to
        fix it); the destination may not."""
        target = await self._gate.target(principal, vfolder_id, VFolderOperation.WRITE_FILES)
        if percent_encoded:
            source, destination = percent_decoded(source), percent_decoded(destination)
        src = parse_relative_path(source, existing=True)
        dst = parse_relative_path(destination)
        # Replacing what is at the destination destroys it: that is deleting, which takes
        # rwd. Without rwd the move goes ahead only if nothing is there (checked under the
        # vfolder's lock, by the driver).
        may_destroy = (
            overwrite
            and target.access.mode is not None
            and (target.access.mode.covers(NEEDED_MODE[VFolderOperation.DELETE_FILES]))
        )
        try:
            async with self._quotas.change(vfolder_id) as change:
                replaced = await target.driver.files.move(
                    vfolder_id, src, dst, overwrite=may_destroy
                )
                await change.settle(-replaced)
        except PathExists:
            if overwrite and not may_destroy:
                # Refused (and audited) as a deletion would be.
                await self._gate.target(principal, vfolder_id, VFolderOperation.DELETE_FILES)
            raise
        return FileInfo.of(await target.driver.files.stat(vfolder_id, dst))

    async def delete(
        self,
        principal: Principal,
        vfolder_id: uuid.UUID,
        paths: list[str],
        *,
        recursive: bool,
        percent_encoded: bool = False,
    ) -> DeleteResults:
        """Each path on its own: one failure does not stop the others."""
        target = await self._gate.target(principal, vfolder_id, VFolderOperation.DELETE_FILES)
        results: list[DeleteResult] = []
        for path in paths:
            try:
                text = percent_decoded(path) if percent_encoded else path
                rel = parse_relative_path(text, existing=True)
                async with self._quotas.change(vfolder_id) as change:
                    freed = await target.driver.files.delete(vfolder_id, rel, recursive=recursive)
                    await change.settle(-freed)
                results.append(DeleteResult(path=path, status="deleted"))
            except DriverError as exc:
                problem_type, title, status = driver_problem(exc)
                detail = display_text(str(exc))
                problem = Problem(type=problem_type, title=title, status=status, detail=detail)
                results.append(DeleteResult(path=path, status="failed", problem=problem))
        return DeleteResults(results=results)


@dataclass(frozen=True)
class _DirectoryMaking:
    """A mkdir: the entries it adds are the components of its path still missing."""

    files: VFolderFiles
    vfolder_id: uuid.UUID
    rel: RelativePath
    parents: bool
    exist_ok: bool

    async def foresee(self) -> Usage:
        return Usage(0, await self.files.missing_entries(self.vfolder_id, self.rel))

    async def make(self) -> Usage:
        return await self.files.mkdir(
            self.vfolder_id, self.rel, parents=self.parents, exist_ok=self.exist_ok
        )


async def _part_data(events: AsyncIterator[object]) -> AsyncIterator[bytes]:
    """The data of the current file part, up to its end."""
    async for event in events:
        if isinstance(event, FileData):
            yield event.data
        elif isinstance(event, FileEnd):
            return
    raise InvalidRequest("the multipart body ended inside a file part")


def _listing(
    principal: Principal, vfolder_id: uuid.UUID, rel: RelativePath, *, recursive: bool
) -> Listing:
    """What a listing cursor is bound to: replayed on anything else, it does not verify."""
    return {
        "endpoint": "files-list",
        "vfolder": str(vfolder_id),
        "path": str(rel),
        "recursive": recursive,
        "sort": "name",
        "principal": principal_key(principal),
    }


def resume_point(position: dict[str, object]) -> tuple[str, ...]:
    """The names the listing resumes after, each one directory entry (the cursor verified,
    but a name that could walk out of the vfolder never reaches the driver)."""
    after = position["after"]
    if not isinstance(after, list) or not 0 < len(after) <= MAX_CURSOR_DEPTH:
        raise refused_cursor("a resume point that is not a list of names")
    try:
        return tuple(require_single_name(name) for name in after)
    except UnsafePath:
        raise refused_cursor("a resume point that is not a single name") from None
