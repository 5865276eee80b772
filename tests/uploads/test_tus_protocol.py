"""tus 1.0.0 conformance, tusd-style: method and headers in, status and headers out."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.files.conftest import VFolderHandle
from tests.support.app import SERVICE, bearer, user_token
from tests.support.sqlite_template import migrated_sqlite


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Wire conformance, not metadata:
    one database is enough (the metadata tests run on both)."""
    return migrated_sqlite(tmp_path / "meta.sqlite3")


ALICE = bearer(user_token("alice"))
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


def meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


async def create(vf: VFolderHandle, length: int | None = 10, **headers: str) -> httpx.Response:
    base = {**ALICE, **TUS, "Upload-Metadata": meta(path="up/file.bin")}
    if length is not None:
        base["Upload-Length"] = str(length)
    return await vf.client.post(vf.url("uploads"), headers={**base, **headers})


async def location(vf: VFolderHandle, length: int | None = 10, **headers: str) -> str:
    created = await create(vf, length, **headers)
    assert created.status_code == 201, created.text
    return str(created.headers["location"])


async def test_options_advertises_what_is_implemented(vfolder: VFolderHandle) -> None:
    response = await vfolder.client.options(vfolder.url("uploads"))
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    extensions = set(response.headers["tus-extension"].split(","))
    assert {"creation", "creation-with-upload", "creation-defer-length"} <= extensions
    assert {"expiration", "checksum", "termination"} <= extensions
    assert set(response.headers["tus-checksum-algorithm"].split(",")) >= {"sha1", "md5", "sha256"}
    assert int(response.headers["tus-max-size"]) > 0
    assert "tus-resumable" not in response.headers


@dataclass
class Case:
    name: str
    method: str
    headers: dict[str, str]
    status: int
    body: bytes = b""
    expect_headers: dict[str, str] = field(default_factory=dict)


CASES = [
    Case("no Tus-Resumable", "HEAD", {}, 412, expect_headers={"tus-version": "1.0.0"}),
    Case(
        "old Tus-Resumable",
        "PATCH",
        {"Tus-Resumable": "0.2.2", **OCTETS, "Upload-Offset": "0"},
        412,
        expect_headers={"tus-version": "1.0.0"},
    ),
    Case(
        "wrong content type",
        "PATCH",
        {**TUS, "Upload-Offset": "0", "Content-Type": "application/octet-stream"},
        415,
        b"x",
    ),
    Case("offset ahead", "PATCH", {**TUS, **OCTETS, "Upload-Offset": "3"}, 409, b"x"),
    Case("offset not a number", "PATCH", {**TUS, **OCTETS, "Upload-Offset": "-1"}, 400, b"x"),
    Case("missing offset", "PATCH", {**TUS, **OCTETS}, 400, b"x"),
    Case("beyond Upload-Length", "PATCH", {**TUS, **OCTETS, "Upload-Offset": "0"}, 413, b"x" * 11),
    Case(
        "unknown checksum",
        "PATCH",
        {**TUS, **OCTETS, "Upload-Offset": "0", "Upload-Checksum": "crc99 AAAA"},
        400,
        b"x",
    ),
    Case(
        "checksum mismatch",
        "PATCH",
        {
            **TUS,
            **OCTETS,
            "Upload-Offset": "0",
            "Upload-Checksum": "sha1 " + base64.b64encode(b"0" * 20).decode(),
        },
        460,
        b"abc",
    ),
    Case(
        "good chunk",
        "PATCH",
        {**TUS, **OCTETS, "Upload-Offset": "0"},
        204,
        b"abcd",
        expect_headers={"upload-offset": "4", "tus-resumable": "1.0.0"},
    ),
    Case(
        "good checksum",
        "PATCH",
        {
            **TUS,
            **OCTETS,
            "Upload-Offset": "0",
            "Upload-Checksum": "sha256 "
            + base64.b64encode(hashlib.sha256(b"ab").digest()).decode(),
        },
        204,
        b"ab",
        expect_headers={"upload-offset": "2"},
    ),
    Case(
        "head",
        "HEAD",
        dict(TUS),
        200,
        expect_headers={
            "upload-offset": "0",
            "upload-length": "10",
            "cache-control": "no-store",
            "upload-metadata": meta(path="up/file.bin"),
        },
    ),
    Case(
        "override to HEAD",
        "POST",
        {**TUS, "X-HTTP-Method-Override": "HEAD"},
        200,
        expect_headers={"upload-offset": "0"},
    ),
    Case("terminate", "DELETE", dict(TUS), 204),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_protocol_table(vfolder: VFolderHandle, case: Case) -> None:
    url = await location(vfolder)
    response = await vfolder.client.request(
        case.method, url, headers={**ALICE, **case.headers}, content=case.body
    )
    assert response.status_code == case.status, response.text
    for name, value in case.expect_headers.items():
        assert response.headers.get(name) == value, name
    if case.status >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    if case.status not in (412,):
        assert (
            "upload-expires" in response.headers or case.status >= 400 or case.method in ("DELETE",)
        )
    if case.status in (413, 460):  # the refused bytes are not kept
        head = await vfolder.client.head(url, headers={**ALICE, **TUS})
        assert head.headers["upload-offset"] == "0"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 400),  # neither length nor deferral
        ({"Upload-Length": "abc"}, 400),
        ({"Upload-Length": "5", "Upload-Defer-Length": "1"}, 400),
        ({"Upload-Length": str(1 << 62)}, 413),
        ({"Upload-Length": "5", "Upload-Metadata": "path !!notbase64"}, 400),
        (
            {"Upload-Length": "5", "Upload-Metadata": "path " + base64.b64encode(b"\xff").decode()},
            400,
        ),
        ({"Upload-Length": "5", "Upload-Metadata": "filename"}, 400),
        ({"Upload-Length": "5", "Upload-Metadata": meta(path="../escape")}, 400),
        ({"Upload-Length": "5", "Tus-Resumable": "2.0.0"}, 412),
    ],
)
async def test_creation_refusals(
    vfolder: VFolderHandle, headers: dict[str, str], status: int
) -> None:
    base: dict[str, Any] = {**ALICE, **TUS, "Upload-Metadata": meta(path="x.bin")}
    response = await vfolder.client.post(vfolder.url("uploads"), headers={**base, **headers})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_whole_flow_with_deferred_length_and_creation_with_upload(
    vfolder: VFolderHandle,
) -> None:
    created = await vfolder.client.post(
        vfolder.url("uploads"),
        headers={
            **ALICE,
            **TUS,
            **OCTETS,
            "Upload-Defer-Length": "1",
            "Upload-Metadata": meta(filename="d.bin", dir="deep/er"),
        },
        content=b"hello ",
    )
    assert created.status_code == 201 and created.headers["upload-offset"] == "6"
    url = created.headers["location"]
    head = await vfolder.client.head(url, headers={**ALICE, **TUS})
    assert head.headers["upload-defer-length"] == "1" and "upload-length" not in head.headers
    done = await vfolder.client.patch(
        url,
        headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "6", "Upload-Length": "11"},
        content=b"world",
    )
    assert done.status_code == 204 and done.headers["upload-offset"] == "11"
    metrics = (await vfolder.client.get("/metrics")).text
    assert "storage_upload_bytes_total 11.0" in metrics
    assert "storage_uploads_in_flight 0.0" in metrics
    assert (vfolder.root / "deep" / "er" / "d.bin").read_bytes() == b"hello world"
    assert await vfolder.usage() == (11, 3)
    after = await vfolder.client.patch(
        url, headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "11"}, content=b"!"
    )
    assert after.status_code in (404, 410)


async def test_destination_rules(vfolder: VFolderHandle) -> None:
    await vfolder.client.put(vfolder.url("files/taken.bin"), content=b"old", headers=ALICE)
    taken = await create(vfolder, 3, **{"Upload-Metadata": meta(path="taken.bin")})
    assert taken.status_code == 409
    url = await location(vfolder, 3, **{"Upload-Metadata": meta(path="taken.bin", overwrite="1")})
    done = await vfolder.client.patch(
        url, headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "0"}, content=b"new"
    )
    assert done.status_code == 204
    assert (vfolder.root / "taken.bin").read_bytes() == b"new"
    assert await vfolder.usage() == (3, 1)


async def test_zero_length_upload_completes_at_creation(vfolder: VFolderHandle) -> None:
    created = await create(vfolder, 0, **{"Upload-Metadata": meta(path="empty")})
    assert created.status_code == 201
    assert (vfolder.root / "empty").read_bytes() == b""


async def test_terminated_and_foreign_uploads(vfolder: VFolderHandle, settings: Settings) -> None:
    url = await location(vfolder)
    staging = settings.data_dir / "volumes" / "local" / ".staging"
    assert len(list(staging.iterdir())) == 1
    bob = bearer(user_token("bob"))
    await vfolder.client.put(
        f"/v1/vfolders/{vfolder.id}/grants/user/bob", json={"mode": "rw"}, headers=SERVICE
    )
    assert (await vfolder.client.head(url, headers={**bob, **TUS})).status_code == 404
    assert (await vfolder.client.delete(url, headers={**ALICE, **TUS})).status_code == 204
    assert list(staging.iterdir()) == []
    again = await vfolder.client.head(url, headers={**ALICE, **TUS})
    assert again.status_code == 410
    missing = await vfolder.client.head(
        vfolder.url("uploads/00000000-0000-4000-8000-000000000000"), headers={**ALICE, **TUS}
    )
    assert missing.status_code == 404


async def test_unfinished_uploads_are_listed_for_their_owner(vfolder: VFolderHandle) -> None:
    url = await location(vfolder)
    listed = (await vfolder.client.get(vfolder.url("uploads"), headers=ALICE)).json()["items"]
    assert [u["id"] for u in listed] == [url.rsplit("/", 1)[1]]
    assert listed[0]["destination"] == "up/file.bin" and listed[0]["offset"] == 0
    admin_view = (await vfolder.client.get(vfolder.url("uploads"), headers=SERVICE)).json()
    assert admin_view["items"] == []  # "your" uploads: the service key started none


async def test_read_only_callers_cannot_upload(vfolder: VFolderHandle) -> None:
    await vfolder.client.put(
        f"/v1/vfolders/{vfolder.id}/grants/user/carol", json={"mode": "ro"}, headers=SERVICE
    )
    carol = bearer(user_token("carol"))
    refused = await vfolder.client.post(
        vfolder.url("uploads"),
        headers={**carol, **TUS, "Upload-Length": "1", "Upload-Metadata": meta(path="c")},
    )
    assert refused.status_code == 403


async def test_expired_uploads_disappear_with_their_staging_files(
    vfolder: VFolderHandle, settings: Settings
) -> None:
    from datetime import UTC, datetime, timedelta

    from app.db.engine import create_engine, create_session_factory
    from app.uploads.expiry import UploadReaper
    from app.volumes.registry import VolumeRegistry

    url = await location(vfolder)
    await vfolder.client.patch(
        url, headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "0"}, content=b"abc"
    )
    staging = settings.data_dir / "volumes" / "local" / ".staging"
    assert len(list(staging.iterdir())) == 1
    engine = create_engine(settings.effective_database_url)
    try:
        reaper = UploadReaper(
            sessions=create_session_factory(engine),
            volumes=VolumeRegistry.from_config(settings.volumes()),
        )
        assert await reaper.run_once() == 0  # not due yet
        later = datetime.now(UTC) + timedelta(seconds=settings.upload_expiry_seconds + 1)
        assert await reaper.run_once(now=later) == 1
    finally:
        await engine.dispose()
    assert list(staging.iterdir()) == []
    assert (await vfolder.client.head(url, headers={**ALICE, **TUS})).status_code == 410
    listed = (await vfolder.client.get(vfolder.url("uploads"), headers=ALICE)).json()
    assert listed["items"] == []


async def test_concurrent_patches_never_both_write(vfolder: VFolderHandle) -> None:
    import anyio

    url = await location(vfolder, 4 * 1024 * 1024)
    statuses: list[int] = []

    async def patch() -> None:
        response = await vfolder.client.patch(
            url,
            headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "0"},
            content=b"x" * (2 * 1024 * 1024),
        )
        statuses.append(response.status_code)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(patch)
    assert statuses.count(204) == 1, statuses
    assert set(statuses) <= {204, 409, 423}
    head = await vfolder.client.head(url, headers={**ALICE, **TUS})
    assert head.headers["upload-offset"] == str(2 * 1024 * 1024)


async def test_parallel_parts_concatenate_into_the_destination(vfolder: VFolderHandle) -> None:
    import os

    import anyio

    data = os.urandom(3 * 1024 * 1024 + 17)
    quarter = len(data) // 4
    pieces = [data[i * quarter : (i + 1) * quarter if i < 3 else None] for i in range(4)]
    urls: list[str] = [""] * 4

    async def upload_part(index: int) -> None:
        created = await vfolder.client.post(
            vfolder.url("uploads"),
            headers={
                **ALICE,
                **TUS,
                "Upload-Concat": "partial",
                "Upload-Length": str(len(pieces[index])),
            },
        )
        assert created.status_code == 201, created.text
        url = created.headers["location"]
        patched = await vfolder.client.patch(
            url, headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "0"}, content=pieces[index]
        )
        assert patched.status_code == 204
        urls[index] = url

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(upload_part, i)
    head = await vfolder.client.head(urls[0], headers={**ALICE, **TUS})
    assert head.headers["upload-concat"] == "partial"
    assert list(vfolder.root.iterdir()) == []  # parts are placed nowhere

    final = await vfolder.client.post(
        vfolder.url("uploads"),
        headers={
            **ALICE,
            **TUS,
            "Upload-Concat": "final;" + " ".join(urls),
            "Upload-Metadata": meta(path="joined.bin"),
        },
    )
    assert final.status_code == 201, final.text
    assert (vfolder.root / "joined.bin").read_bytes() == data
    final_head = await vfolder.client.head(final.headers["location"], headers={**ALICE, **TUS})
    assert final_head.headers["upload-concat"].startswith("final;")
    assert final_head.headers["upload-offset"] == str(len(data))
    assert await vfolder.usage() == (len(data), 1)
    staging = vfolder.root.parents[2] / ".staging"
    assert list(staging.iterdir()) == []  # the parts were consumed

    reused = await vfolder.client.post(
        vfolder.url("uploads"),
        headers={
            **ALICE,
            **TUS,
            "Upload-Concat": "final;" + urls[0],
            "Upload-Metadata": meta(path="again.bin"),
        },
    )
    assert reused.status_code == 400


async def test_a_completion_interrupted_by_a_crash_is_counted_once(
    vfolder: VFolderHandle, settings: Settings
) -> None:
    import uuid

    from sqlalchemy import update

    from app.db.engine import create_engine, create_session_factory
    from app.uploads.expiry import UploadReaper
    from app.uploads.models import UploadRow
    from app.volumes.registry import VolumeRegistry

    url = await location(vfolder, 3, **{"Upload-Metadata": meta(path="crashed.bin")})
    upload_id = uuid.UUID(url.rsplit("/", 1)[1])
    staging = settings.data_dir / "volumes" / "local" / ".staging" / f"tus-{upload_id.hex}"
    # What a process leaves when it dies between the rename and its commit: all bytes
    # acknowledged, the file in place, the record still active, the usage not counted.
    staging.write_bytes(b"abc")
    staging.rename(vfolder.root / "crashed.bin")
    engine = create_engine(settings.effective_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(update(UploadRow).where(UploadRow.id == upload_id).values(offset=3))
        reaper = UploadReaper(
            sessions=create_session_factory(engine),
            volumes=VolumeRegistry.from_config(settings.volumes()),
        )
        assert await reaper.repair_interrupted_completions() == 1
        assert await reaper.repair_interrupted_completions() == 0
    finally:
        await engine.dispose()
    assert await vfolder.usage() == (3, 1)
    head = await vfolder.client.head(url, headers={**ALICE, **TUS})
    assert head.headers["upload-offset"] == "3"


async def test_cors_exposes_the_tus_headers(tmp_path: Any, database_url: str) -> None:
    from tests.support.app import client_for, make_settings

    settings = make_settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        cors_allow_origins=["https://app.example"],
    )
    async with client_for(settings) as client:
        preflight = await client.options(
            "/v1/vfolders/00000000-0000-4000-8000-000000000000/uploads/x",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "tus-resumable,upload-offset,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        simple = await client.get("/health/live", headers={"Origin": "https://app.example"})
        exposed = {
            h.strip().lower() for h in simple.headers["access-control-expose-headers"].split(",")
        }
        assert {"upload-offset", "location", "upload-length", "tus-resumable"} <= exposed
        assert {"upload-expires", "tus-version", "upload-metadata"} <= exposed
        other = await client.get("/health/live", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


async def test_upload_transfer_tokens_are_scoped(vfolder: VFolderHandle) -> None:
    minted = await vfolder.client.post(
        vfolder.url("transfer-tokens"),
        json={"operation": "upload", "path": "inbox", "prefix": True},
        headers=ALICE,
    )
    token = {"Authorization": f"Bearer {minted.json()['token']}"}
    inside = await vfolder.client.post(
        vfolder.url("uploads"),
        headers={**token, **TUS, "Upload-Length": "2", "Upload-Metadata": meta(path="inbox/a")},
    )
    assert inside.status_code == 201, inside.text
    done = await vfolder.client.patch(
        inside.headers["location"],
        params={"token": minted.json()["token"]},
        headers={**TUS, **OCTETS, "Upload-Offset": "0"},
        content=b"ok",
    )
    assert done.status_code == 204
    outside = await vfolder.client.post(
        vfolder.url("uploads"),
        headers={**token, **TUS, "Upload-Length": "2", "Upload-Metadata": meta(path="elsewhere")},
    )
    assert outside.status_code == 403
    assert outside.json()["type"] == "/problems/transfer-token-scope"
