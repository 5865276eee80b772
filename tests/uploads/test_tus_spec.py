"""tus 1.0.0 to the letter, where generic clients trip: finished and final uploads, creations
without destination metadata, and a 423 that says when to retry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from app.config import Settings
from app.db.engine import create_engine
from app.uploads.models import UploadRow
from tests.files.conftest import VFolderHandle
from tests.support.polling import wait_until
from tests.uploads.test_tus_protocol import ALICE, OCTETS, TUS, create, location, meta


@dataclass
class Done:
    """A request against an upload that is no longer being written."""

    name: str
    kind: str  # "zero-length" (finished at creation) or "final" (made of one part)
    method: str
    headers: dict[str, str]
    status: int
    body: bytes = b""
    expect_headers: dict[str, str] = field(default_factory=dict)
    problem: str | None = None


FINISHED = [
    Done(
        "empty PATCH at the end of a finished zero-length upload",
        "zero-length",
        "PATCH",
        {**OCTETS, "Upload-Offset": "0"},
        204,
        expect_headers={"upload-offset": "0"},
    ),
    Done(
        "bytes after the end of a finished upload",
        "zero-length",
        "PATCH",
        {**OCTETS, "Upload-Offset": "0"},
        410,
        b"more",
    ),
    Done(
        "empty PATCH past the end of a finished upload",
        "zero-length",
        "PATCH",
        {**OCTETS, "Upload-Offset": "7"},
        409,
    ),
    Done("DELETE of a finished upload", "zero-length", "DELETE", {}, 204),
    Done(
        "PATCH against a final upload",
        "final",
        "PATCH",
        {**OCTETS, "Upload-Offset": "3"},
        403,
        b"x",
        problem="/problems/upload-is-final",
    ),
    Done(
        "empty PATCH against a final upload",
        "final",
        "PATCH",
        {**OCTETS, "Upload-Offset": "3"},
        403,
        problem="/problems/upload-is-final",
    ),
    Done("DELETE of a final upload", "final", "DELETE", {}, 204),
    Done("HEAD of a final upload", "final", "HEAD", {}, 200, expect_headers={"upload-offset": "3"}),
]


async def _finished(vfolder: VFolderHandle, kind: str) -> str:
    if kind == "zero-length":
        url = await location(vfolder, 0, **{"Upload-Metadata": meta(path="empty.bin")})
        # Finished at creation; placed by the creation, or (when the sweep of received
        # uploads held the upload's lease just then) by that sweep a moment later.
        await wait_until(lambda: (vfolder.root / "empty.bin").exists())
        return url
    part = await vfolder.client.post(
        vfolder.url("uploads"),
        headers={**ALICE, **TUS, **OCTETS, "Upload-Concat": "partial", "Upload-Length": "3"},
        content=b"abc",
    )
    assert part.status_code == 201, part.text
    final = await vfolder.client.post(
        vfolder.url("uploads"),
        headers={
            **ALICE,
            **TUS,
            "Upload-Concat": "final;" + part.headers["location"],
            "Upload-Metadata": meta(path="joined.bin"),
        },
    )
    assert final.status_code == 201, final.text
    return str(final.headers["location"])


@pytest.mark.parametrize("case", FINISHED, ids=[c.name for c in FINISHED])
async def test_requests_against_finished_uploads(vfolder: VFolderHandle, case: Done) -> None:
    url = await _finished(vfolder, case.kind)
    placed = sorted(p.name for p in vfolder.root.iterdir())
    response = await vfolder.client.request(
        case.method, url, headers={**ALICE, **TUS, **case.headers}, content=case.body
    )
    assert response.status_code == case.status, response.text
    for name, value in case.expect_headers.items():
        assert response.headers.get(name) == value, name
    if case.status >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    if case.problem is not None:
        assert response.json()["type"] == case.problem
    # Whatever was asked, the finished file stays as it was.
    assert sorted(p.name for p in vfolder.root.iterdir()) == placed
    if case.method == "DELETE":  # the upload is forgotten, as after any termination
        head = await vfolder.client.head(url, headers={**ALICE, **TUS})
        assert head.status_code == 410


async def test_a_creation_without_destination_metadata_is_stored_under_its_id(
    vfolder: VFolderHandle,
) -> None:
    # What tuspy sends by default, and any minimal script: no Upload-Metadata at all.
    created = await vfolder.client.post(
        vfolder.url("uploads"), headers={**ALICE, **TUS, "Upload-Length": "5"}
    )
    assert created.status_code == 201, created.text
    upload_id = created.headers["location"].rsplit("/", 1)[1]
    assert created.headers["upload-destination"] == upload_id
    head = await vfolder.client.head(created.headers["location"], headers={**ALICE, **TUS})
    assert head.headers["upload-destination"] == upload_id
    assert "upload-metadata" not in head.headers
    done = await vfolder.client.patch(
        created.headers["location"],
        headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "0"},
        content=b"hello",
    )
    assert done.status_code == 204
    assert (vfolder.root / upload_id).read_bytes() == b"hello"
    assert await vfolder.usage() == (5, 1)
    # Metadata that names no destination (Uppy's filetype, say) is the same case.
    typed = await create(vfolder, 1, **{"Upload-Metadata": meta(filetype="text/plain")})
    assert typed.status_code == 201, typed.text
    assert typed.headers["upload-destination"] == typed.headers["location"].rsplit("/", 1)[1]


async def test_the_destination_header_is_percent_encoded(vfolder: VFolderHandle) -> None:
    created = await create(vfolder, 1, **{"Upload-Metadata": meta(path="dir/é x.bin")})
    assert created.status_code == 201, created.text
    assert created.headers["upload-destination"] == "dir/%C3%A9%20x.bin"


async def test_a_locked_upload_answers_423_with_retry_after(
    vfolder: VFolderHandle, settings: Settings
) -> None:
    url = await location(vfolder)
    engine = create_engine(settings.effective_database_url)
    try:  # another node is writing it: its lease is in the upload's row
        async with engine.begin() as conn:
            await conn.execute(
                update(UploadRow)
                .where(UploadRow.id == uuid.UUID(url.rsplit("/", 1)[1]))
                .values(
                    lock_token="another-node", lock_expires_at=datetime.now(UTC) + timedelta(60)
                )
            )
    finally:
        await engine.dispose()
    locked = await vfolder.client.patch(
        url, headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "0"}, content=b"abc"
    )
    assert locked.status_code == 423, locked.text
    assert locked.headers["content-type"] == "application/problem+json"
    assert int(locked.headers["retry-after"]) >= 1
