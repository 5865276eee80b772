"""The Manager's file calls on our services: each resolves ``(volume, vfid)`` to our vfolder,
then acts as the Manager through ``FilesService`` / ``TusService`` (same path safety, ledger,
quotas, trash and logs as ``/v1``). The upload and download calls mint the client tokens."""

from __future__ import annotations

import base64
import contextlib
import json
import stat
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.backendai.auth import MANAGER_PRINCIPAL
from app.backendai.client_tokens import ClientTokens
from app.backendai.identity import VFolderId
from app.backendai.lookup import read_vfolder_entry
from app.errors import InvalidRequest, Problem, driver_problem
from app.files.schemas import DeleteResult
from app.files.service import FilesService
from app.observability.context import bind_log_fields
from app.uploads.service import TusService
from app.vfolders.reader import VFolderReader
from app.vfolders.schemas import VFolder
from drivers.base import Readable
from drivers.errors import DriverError, NotARegularFile
from drivers.paths import RelativePath, display_text, parse_relative_path, require_single_name
from drivers.types import EntryType, FileEntry

ENTRY_TYPES = {EntryType.FILE: "FILE", EntryType.DIR: "DIRECTORY", EntryType.SYMLINK: "SYMLINK"}
# Our listing keeps the permission bits; the Manager formats the whole st_mode (stat.filemode).
FORMAT_BITS = {
    EntryType.FILE: stat.S_IFREG,
    EntryType.DIR: stat.S_IFDIR,
    EntryType.SYMLINK: stat.S_IFLNK,
}


IS_A_DIRECTORY = "/problems/is-a-directory"


def manager_item(entry: FileEntry) -> dict[str, object]:
    """One entry as Backend.AI lists it. Our listing has no creation time (``st_ctime`` is
    not one either): ``created`` is the modification time."""
    moment = datetime.fromtimestamp(entry.mtime_ns / 1e9, UTC).isoformat()
    return {
        "name": display_text(entry.name),
        "type": ENTRY_TYPES.get(entry.type, "FILE"),
        "stat": {
            "mode": FORMAT_BITS.get(entry.type, 0) | entry.mode,
            "size": entry.size,
            "created": moment,
            "modified": moment,
        },
        "symlink_target": display_text(entry.target or ""),
    }


async def listing_json(batches: AsyncIterator[list[FileEntry]]) -> AsyncIterator[bytes]:
    """``{"items": [...]}`` a batch at a time: memory stays flat whatever the directory holds.
    A failure half-way cuts the connection, so the Manager sees broken JSON, never a short
    list that looks whole."""
    yield b'{"items":['
    first = True
    async for batch in batches:
        if not batch:
            continue
        text = ",".join(json.dumps(manager_item(entry), ensure_ascii=False) for entry in batch)
        yield (text if first else "," + text).encode()
        first = False
    yield b"]}"


def upload_metadata(relpath: str) -> str:
    """tus metadata of an upload to ``relpath`` that replaces what is there, as Backend.AI's
    proxy does."""
    encoded = base64.b64encode(relpath.encode()).decode()
    return f"filename {encoded},overwrite {base64.b64encode(b'1').decode()}"


class BackendAIFiles:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        reader: VFolderReader,
        files: FilesService,
        tus: TusService,
        tokens: ClientTokens,
    ) -> None:
        self._sessions = sessions
        self._reader = reader
        self._files = files
        self._tus = tus
        self._tokens = tokens

    @contextlib.asynccontextmanager
    async def folder(self, volume: str, vfid: str) -> AsyncIterator[VFolder]:
        """The vfolder ``vfid`` names on ``volume``; the file service, checking access on it
        within the block, reuses what was read here."""
        parsed = VFolderId.parse(vfid)
        vfolder, rules = await read_vfolder_entry(self._sessions, self._reader, volume, parsed)
        bind_log_fields(volume=volume, vfid=vfid)
        with self._reader.reusing(vfolder.id, (vfolder, rules)):
            yield vfolder

    async def mkdir(
        self, volume: str, vfid: str, relpath: str, *, parents: bool, exist_ok: bool
    ) -> None:
        async with self.folder(volume, vfid) as vfolder:
            await self._files.make_directory(
                MANAGER_PRINCIPAL, vfolder.id, relpath, parents=parents, exist_ok=exist_ok
            )

    async def list_dir(self, volume: str, vfid: str, relpath: str) -> AsyncIterator[bytes]:
        """The whole directory (no cap), one level; checked before the first byte."""
        async with self.folder(volume, vfid) as vfolder:
            batches = await self._files.open_listing(
                MANAGER_PRINCIPAL, vfolder.id, relpath, recursive=False
            )
            return listing_json(batches)

    async def fetch(self, volume: str, vfid: str, relpath: str) -> Readable:
        async with self.folder(volume, vfid) as vfolder:
            handle, _name = await self._files.open_download(MANAGER_PRINCIPAL, vfolder.id, relpath)
            return handle

    async def rename(self, volume: str, vfid: str, relpath: str, new_name: str) -> None:
        async with self.folder(volume, vfid) as vfolder:
            source = parse_relative_path(relpath, existing=True)
            if source.is_root:
                raise InvalidRequest("the vfolder root cannot be renamed")
            destination = RelativePath((*source.parent.parts, require_single_name(new_name)))
            await self._files.move(
                MANAGER_PRINCIPAL, vfolder.id, relpath, str(destination), overwrite=False
            )

    async def move(self, volume: str, vfid: str, src_relpath: str, dst_relpath: str) -> None:
        async with self.folder(volume, vfid) as vfolder:
            await self._files.move(
                MANAGER_PRINCIPAL, vfolder.id, src_relpath, dst_relpath, overwrite=False
            )

    async def delete(
        self, volume: str, vfid: str, relpaths: list[str], *, recursive: bool
    ) -> DeleteResult | None:
        """In order, stopping at the first failure (returned), as Backend.AI's proxy does."""
        async with self.folder(volume, vfid) as vfolder:
            for relpath in relpaths:
                if not recursive:
                    refusal = await self._directory_refusal(vfolder.id, relpath)
                    if refusal is not None:
                        return refusal
                result = await self._files.delete(
                    MANAGER_PRINCIPAL, vfolder.id, [relpath], recursive=recursive
                )
                if result.results[0].status != "deleted":
                    return result.results[0]
            return None

    async def _directory_refusal(self, vfolder_id: uuid.UUID, relpath: str) -> DeleteResult | None:
        """A directory without ``recursive`` is refused even when empty, as Backend.AI's proxy
        (and ``rm``) does; a path that cannot be read is reported as the delete would."""
        try:
            info = await self._files.stat(MANAGER_PRINCIPAL, vfolder_id, relpath)
        except DriverError as exc:
            problem_type, title, status = driver_problem(exc)
            problem = Problem(
                type=problem_type, title=title, status=status, detail=display_text(str(exc))
            )
            return DeleteResult(path=relpath, status="failed", problem=problem)
        if info.type is not EntryType.DIR:
            return None
        problem = Problem(
            type=IS_A_DIRECTORY,
            title="Is a directory",
            status=400,
            detail=f"{info.path} is a directory (set recursive to delete it)",
        )
        return DeleteResult(path=relpath, status="failed", problem=problem)

    async def upload_token(self, volume: str, vfid: str, relpath: str, size: int) -> str:
        """A tus upload created now (its quota reserved: an oversized file is refused here);
        a size-0 one is placed at once, as the 23.9 client sends no PATCH for it."""
        async with self.folder(volume, vfid) as vfolder:
            destination = parse_relative_path(relpath)  # refused here: it goes into the metadata
            state = await self._tus.create(
                MANAGER_PRINCIPAL,
                vfolder.id,
                length=size,
                metadata_header=upload_metadata(str(destination)),
                body=None,
                checksum=None,
            )
            return self._tokens.mint_upload(
                volume=volume,
                vfid=VFolderId.parse(vfid),
                relpath=relpath,
                size=size,
                session=state.id,
            )

    async def download_token(
        self, volume: str, vfid: str, relpath: str, *, archive: bool, unmanaged_path: str | None
    ) -> str:
        if archive:
            raise InvalidRequest("archive downloads are not supported by this storage proxy")
        if unmanaged_path:
            raise InvalidRequest("unmanaged_path downloads are not supported by this storage proxy")
        async with self.folder(volume, vfid) as vfolder:
            # Refused now rather than on the client's GET: the Manager shows this message.
            info = await self._files.stat(MANAGER_PRINCIPAL, vfolder.id, relpath)
            if info.type is not EntryType.FILE:
                raise NotARegularFile(f"{info.path or '/'} is not a regular file")
            return self._tokens.mint_download(
                volume=volume, vfid=VFolderId.parse(vfid), relpath=relpath
            )
