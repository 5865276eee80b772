from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.support.app import SERVICE, bearer, user_token

ALICE = bearer(user_token("alice"))


@dataclass
class VFolderHandle:
    client: httpx.AsyncClient
    id: str
    root: Path
    base: str

    def url(self, suffix: str) -> str:
        return f"{self.base}/{suffix}"

    async def usage(self) -> tuple[int, int]:
        body = (await self.client.get(self.url("usage"), headers=SERVICE)).json()
        return body["used_bytes"], body["file_count"]


@pytest.fixture
async def vfolder(client: httpx.AsyncClient, settings: Settings) -> AsyncIterator[VFolderHandle]:
    created = await client.post(
        "/v1/vfolders", json={"name": "files", "volume": "local"}, headers=ALICE
    )
    assert created.status_code == 201
    vfolder_id = created.json()["id"]
    hex_id = vfolder_id.replace("-", "")
    root = settings.data_dir / "volumes" / "local" / hex_id[:2] / hex_id[2:4] / hex_id
    yield VFolderHandle(client, vfolder_id, root, f"/v1/vfolders/{vfolder_id}")
