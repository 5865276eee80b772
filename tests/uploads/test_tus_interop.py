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
    env = clean_environment(STORAGE_SERVICE_KEYS=KEY)
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
    assert usage["vfolder_id"] == live.vfolder_url.rsplit("/", 1)[1]
    # The ledger's own figure: no scan runs in the tests unless one asks for it.
    assert (usage["used_bytes"], usage["file_count"], usage["source"]) == (
        20 * 1024 * 1024,
        2,
        "ledger",
    )


def test_four_parts_in_parallel_then_concatenated(live: Live, tmp_path: Path) -> None:
    import base64
    import threading

    data = os.urandom(8 * 1024 * 1024 + 5)
    quarter = len(data) // 4
    pieces = [data[i * quarter : (i + 1) * quarter if i < 3 else None] for i in range(4)]
    urls: list[str] = [""] * 4
    tus_headers = {**live.headers, "Tus-Resumable": "1.0.0"}

    def upload_part(index: int) -> None:
        with httpx.Client(base_url=live.base_url, headers=tus_headers, timeout=60) as http:
            created = http.post(
                live.uploads_url,
                headers={"Upload-Concat": "partial", "Upload-Length": str(len(pieces[index]))},
            )
            location = created.headers["location"]
            patched = http.patch(
                location,
                headers={
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                },
                content=pieces[index],
            )
            assert patched.status_code == 204
            urls[index] = location

    threads = [threading.Thread(target=upload_part, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(urls)
    final = httpx.post(
        live.uploads_url,
        headers={
            **tus_headers,
            "Upload-Concat": "final;" + " ".join(urls),
            "Upload-Metadata": "path " + base64.b64encode(b"joined.bin").decode(),
        },
    )
    assert final.status_code == 201, final.text
    assert (
        hashlib.sha256((live.root / "joined.bin").read_bytes()).digest()
        == hashlib.sha256(data).digest()
    )
    assert list(live.staging.iterdir()) == []


def test_tuspy_with_no_metadata_at_all(live: Live, tmp_path: Path) -> None:
    """tuspy's defaults name no destination: the file lands under the upload id, and the
    server says so."""
    source = tmp_path / "anonymous.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    client = tus.TusClient(live.uploads_url, headers=live.headers)
    uploader = client.uploader(str(source), chunk_size=1024 * 1024)
    uploader.upload()
    assert uploader.url is not None
    upload_id = uploader.url.rsplit("/", 1)[1]
    head = httpx.head(uploader.url, headers={**live.headers, "Tus-Resumable": "1.0.0"})
    assert head.headers["upload-destination"] == upload_id
    assert (live.root / upload_id).read_bytes() == source.read_bytes()
