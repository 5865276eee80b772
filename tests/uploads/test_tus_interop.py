"""A real tus client (tuspy) against a real server: interrupted, resumed, byte-exact."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tusclient import client as tus

from tests.support.server import clean_environment, serving

pytestmark = pytest.mark.slow

KEY = "tus-service-key-0123456789abcdef0123456789"


@dataclass
class Live:
    base_url: str
    uploads_url: str
    vfolder_url: str
    root: Path
    staging: Path
    headers: dict[str, str]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    env = clean_environment(STORAGE_SERVICE_KEYS=KEY, STORAGE_LOG_LEVEL="WARNING")
    headers = {"Authorization": f"Bearer {KEY}", "X-Act-As-User": "alice"}
    with serving(cwd=tmp_path, env=env) as server:
        created = httpx.post(
            f"{server.base_url}/v1/vfolders",
            json={"name": "tus", "volume": "local", "owner_id": "alice"},
            headers={"Authorization": f"Bearer {KEY}"},
        ).json()
        hex_id = uuid.UUID(created["id"]).hex
        volume = tmp_path / "var" / "volumes" / "local"
        vfolder_url = f"{server.base_url}/v1/vfolders/{created['id']}"
        yield Live(
            base_url=server.base_url,
            uploads_url=f"{vfolder_url}/uploads",
            vfolder_url=vfolder_url,
            root=volume / hex_id[:2] / hex_id[2:4] / hex_id,
            staging=volume / ".staging",
            headers=headers,
        )


def test_tuspy_interrupted_and_resumed(live: Live, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(20 * 1024 * 1024))
    client = tus.TusClient(live.uploads_url, headers=live.headers)
    first = client.uploader(
        str(source), chunk_size=1024 * 1024, metadata={"filename": "data.bin", "dir": "in"}
    )
    for _ in range(7):  # then the client "dies"
        first.upload_chunk()
    assert first.url is not None
    resumed = client.uploader(str(source), chunk_size=1024 * 1024, url=first.url)
    assert resumed.get_offset() == 7 * 1024 * 1024
    resumed.upload()
    target = live.root / "in" / "data.bin"
    assert (
        hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    )
    assert list(live.staging.iterdir()) == []
    usage = httpx.get(f"{live.vfolder_url}/usage", headers=live.headers).json()
    assert usage == {
        "vfolder_id": live.vfolder_url.rsplit("/", 1)[1],
        "used_bytes": 20 * 1024 * 1024,
        "file_count": 2,
    }
