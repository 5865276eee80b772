"""Download conformance: ranges and validators, table-driven (RFC 9110)."""

from __future__ import annotations

import email.utils
from pathlib import Path

import pytest

from tests.files.conftest import ALICE, VFolderHandle
from tests.support.sqlite_template import migrated_sqlite


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Ranges and validators of bytes on disk, not metadata:
    one database is enough (the metadata tests run on both)."""
    return migrated_sqlite(tmp_path / "meta.sqlite3")


DATA = bytes(range(256)) * 40  # 10,240 bytes


@pytest.fixture
async def file(vfolder: VFolderHandle) -> tuple[VFolderHandle, str, str]:
    stored = await vfolder.client.put(vfolder.url("files/data.bin"), content=DATA, headers=ALICE)
    etag = stored.headers["etag"]
    head = await vfolder.client.head(vfolder.url("files/data.bin"), headers=ALICE)
    return vfolder, etag, head.headers["last-modified"]


@pytest.mark.parametrize(
    ("range_header", "status", "start", "end"),
    [
        (None, 200, 0, len(DATA) - 1),
        ("bytes=0-99", 206, 0, 99),
        ("bytes=100-", 206, 100, len(DATA) - 1),
        ("bytes=-100", 206, len(DATA) - 100, len(DATA) - 1),
        ("bytes=-999999", 206, 0, len(DATA) - 1),
        ("bytes=10000-999999", 206, 10000, len(DATA) - 1),
        ("bytes=5-5", 206, 5, 5),
        ("bytes=0-1,5-6", 200, 0, len(DATA) - 1),  # several ranges: whole file, documented
        ("bytes=9-3", 200, 0, len(DATA) - 1),  # invalid: ignored
        ("items=0-5", 200, 0, len(DATA) - 1),  # unknown unit: ignored
        ("bytes=abc", 200, 0, len(DATA) - 1),
    ],
)
async def test_ranges(
    file: tuple[VFolderHandle, str, str],
    range_header: str | None,
    status: int,
    start: int,
    end: int,
) -> None:
    vf, _, _ = file
    headers = {**ALICE, **({"Range": range_header} if range_header else {})}
    response = await vf.client.get(vf.url("files/data.bin"), headers=headers)
    assert response.status_code == status
    assert response.content == DATA[start : end + 1]
    assert int(response.headers["content-length"]) == end - start + 1
    assert response.headers["accept-ranges"] == "bytes"
    if status == 206:
        assert response.headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
    else:
        assert "content-range" not in response.headers


@pytest.mark.parametrize("range_header", ["bytes=10240-", "bytes=20000-30000", "bytes=-0"])
async def test_unsatisfiable_range_is_416(
    file: tuple[VFolderHandle, str, str], range_header: str
) -> None:
    vf, _, _ = file
    response = await vf.client.get(
        vf.url("files/data.bin"), headers={**ALICE, "Range": range_header}
    )
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"
    assert response.json()["type"] == "/problems/range-not-satisfiable"


async def test_validators(file: tuple[VFolderHandle, str, str]) -> None:
    vf, etag, last_modified = file
    url = vf.url("files/data.bin")
    cases: list[tuple[dict[str, str], int]] = [
        ({"If-None-Match": etag}, 304),
        ({"If-None-Match": f'"other", {etag}'}, 304),
        ({"If-None-Match": f"W/{etag}"}, 304),
        ({"If-None-Match": "*"}, 304),
        ({"If-None-Match": '"stale"'}, 200),
        ({"If-Modified-Since": last_modified}, 304),
        ({"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}, 200),
        ({"If-Modified-Since": "not a date"}, 200),
        ({"If-None-Match": '"stale"', "If-Modified-Since": last_modified}, 200),
        ({"Range": "bytes=0-9", "If-Range": etag}, 206),
        ({"Range": "bytes=0-9", "If-Range": '"stale"'}, 200),
        ({"Range": "bytes=0-9", "If-Range": f"W/{etag}"}, 200),  # weak never matches
        ({"Range": "bytes=0-9", "If-Range": last_modified}, 206),
        ({"Range": "bytes=0-9", "If-Range": "Thu, 01 Jan 1970 00:00:00 GMT"}, 200),
    ]
    for headers, status in cases:
        response = await vf.client.get(url, headers={**ALICE, **headers})
        assert response.status_code == status, headers
        assert response.headers["etag"] == etag
        if status == 304:
            assert response.content == b""
        if status == 200:
            assert response.content == DATA


async def test_head_has_the_headers_and_no_body(file: tuple[VFolderHandle, str, str]) -> None:
    vf, _, _ = file
    get = await vf.client.get(vf.url("files/data.bin"), headers=ALICE)
    head = await vf.client.head(vf.url("files/data.bin"), headers=ALICE)
    assert head.status_code == 200 and head.content == b""
    for name in ("etag", "last-modified", "content-length", "content-type", "content-disposition"):
        assert head.headers[name] == get.headers[name], name
    ranged = await vf.client.head(vf.url("files/data.bin"), headers={**ALICE, "Range": "bytes=1-2"})
    assert ranged.status_code == 206 and ranged.headers["content-length"] == "2"


async def test_etag_changes_with_content(file: tuple[VFolderHandle, str, str]) -> None:
    vf, etag, _ = file
    await vf.client.put(vf.url("files/data.bin"), content=b"new", headers=ALICE)
    response = await vf.client.get(
        vf.url("files/data.bin"), headers={**ALICE, "If-None-Match": etag}
    )
    assert response.status_code == 200 and response.content == b"new"
    assert response.headers["etag"] != etag
    parsed = email.utils.parsedate_to_datetime(response.headers["last-modified"])
    assert parsed.tzinfo is not None


async def test_empty_file(vfolder: VFolderHandle) -> None:
    await vfolder.client.put(vfolder.url("files/empty"), content=b"", headers=ALICE)
    response = await vfolder.client.get(vfolder.url("files/empty"), headers=ALICE)
    assert response.status_code == 200 and response.content == b""
    ranged = await vfolder.client.get(
        vfolder.url("files/empty"), headers={**ALICE, "Range": "bytes=0-"}
    )
    assert ranged.status_code == 416
