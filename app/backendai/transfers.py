"""The client-facing side of the Manager's tokens: a verified token, its folder resolved again
(volume and quota scope must still agree) before any disk access, then our tus and download
code acting within the token's grant."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.backendai.client_tokens import ClientGrant, ClientTokenOp, ClientTokens
from app.backendai.lookup import read_vfolder
from app.files.service import FilesService
from app.observability.context import bind_log_fields
from app.uploads.service import TusService, UploadState
from app.vfolders.reader import VFolderReader
from drivers.base import Readable


class ClientTransfers:
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

    async def _resolve(self, token: str | None, op: ClientTokenOp) -> tuple[ClientGrant, uuid.UUID]:
        grant = self._tokens.verify(token, op)
        vfolder = await read_vfolder(self._sessions, self._reader, grant.volume, grant.vfid)
        bind_log_fields(volume=grant.volume, vfid=str(grant.vfid), jti=grant.jti)
        return grant, vfolder.id

    async def append(
        self,
        token: str | None,
        *,
        offset: int,
        content_type: str | None,
        body: AsyncIterator[bytes],
    ) -> UploadState:
        grant, vfolder_id = await self._resolve(token, ClientTokenOp.UPLOAD)
        assert grant.session is not None
        return await self._tus.patch(
            grant.principal(vfolder_id),
            vfolder_id,
            grant.session,
            offset=offset,
            content_type=content_type,
            upload_length=None,
            body=body,
            checksum=None,
        )

    async def upload_state(self, token: str | None) -> UploadState:
        grant, vfolder_id = await self._resolve(token, ClientTokenOp.UPLOAD)
        assert grant.session is not None
        return await self._tus.head(grant.principal(vfolder_id), vfolder_id, grant.session)

    async def open_download(self, token: str | None) -> tuple[Readable, str]:
        grant, vfolder_id = await self._resolve(token, ClientTokenOp.DOWNLOAD)
        return await self._files.open_download(
            grant.principal(vfolder_id), vfolder_id, str(grant.relpath)
        )
