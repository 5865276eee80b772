"""A transfer token handed to a browser or a tus client carries its minter's identity but only
a sliver of their rights: through it, nobody learns the minter's other uploads or where they
are going."""

from __future__ import annotations

from typing import Any

import httpx

from tests.files.conftest import ALICE, VFolderHandle
from tests.uploads.test_tus_protocol import OCTETS, TUS, meta


async def start_upload(vfolder: VFolderHandle, path: str, headers: dict[str, str]) -> str:
    created = await vfolder.client.post(
        vfolder.url("uploads"),
        headers={**headers, **TUS, "Upload-Length": "10", "Upload-Metadata": meta(path=path)},
    )
    assert created.status_code == 201, created.text
    return str(created.headers["location"])


async def mint(vfolder: VFolderHandle, **body: Any) -> dict[str, str]:
    minted = await vfolder.client.post(vfolder.url("transfer-tokens"), json=body, headers=ALICE)
    assert minted.status_code == 201, minted.text
    return {"Authorization": f"Bearer {minted.json()['token']}"}


async def listed(vfolder: VFolderHandle, headers: dict[str, str]) -> httpx.Response:
    return await vfolder.client.get(vfolder.url("uploads"), headers=headers)


async def test_upload_token_lists_only_uploads_to_its_own_path(vfolder: VFolderHandle) -> None:
    (vfolder.root / "inbox").mkdir()
    (vfolder.root / "private").mkdir()
    secret_plan = await start_upload(vfolder, "private/takeover-plan.bin", ALICE)
    await start_upload(vfolder, "inbox/b.bin", ALICE)
    exact = await mint(vfolder, operation="upload", path="inbox/a.bin")
    mine = await start_upload(vfolder, "inbox/a.bin", exact)

    as_token = await listed(vfolder, exact)
    assert as_token.status_code == 200, as_token.text
    assert [u["id"] for u in as_token.json()["items"]] == [mine.rsplit("/", 1)[1]]
    assert "takeover-plan" not in as_token.text and "b.bin" not in as_token.text

    prefix = await mint(vfolder, operation="upload", path="inbox", prefix=True)
    by_prefix = (await listed(vfolder, prefix)).json()["items"]
    assert sorted(u["destination"] for u in by_prefix) == ["inbox/a.bin", "inbox/b.bin"]

    # The minter, with their own credential, still sees all three.
    assert len((await listed(vfolder, ALICE)).json()["items"]) == 3

    # Nor does the token read the other upload's state (its Upload-Metadata names the file).
    head = await vfolder.client.head(secret_plan, headers={**exact, **TUS})
    assert head.status_code in (403, 404)
    assert "upload-metadata" not in head.headers


async def test_download_token_lists_no_uploads(vfolder: VFolderHandle) -> None:
    (vfolder.root / "f").write_bytes(b"x")
    await start_upload(vfolder, "up.bin", ALICE)
    download = await mint(vfolder, operation="download", path="f")
    response = await listed(vfolder, download)
    assert response.status_code == 403, response.text
    assert response.json()["type"] == "/problems/transfer-token-scope"
    assert "up.bin" not in response.text


async def test_upload_token_joins_only_parts_it_made(vfolder: VFolderHandle) -> None:
    """Parts are the minter's too, but a token uploads (and lists, and joins) only the parts
    made through a token of its scope: not the minter's other parts."""
    token = await mint(vfolder, operation="upload", path="joined.bin")
    parts = []
    for chunk in (b"ab", b"cd"):
        made = await vfolder.client.post(
            vfolder.url("uploads"),
            headers={**token, **TUS, "Upload-Length": "2", "Upload-Concat": "partial"},
        )
        assert made.status_code == 201, made.text
        patched = await vfolder.client.patch(
            made.headers["location"],
            headers={**token, **TUS, **OCTETS, "Upload-Offset": "0"},
            content=chunk,
        )
        assert patched.status_code == 204, patched.text
        parts.append(made.headers["location"])
    minters_part = await vfolder.client.post(
        vfolder.url("uploads"),
        headers={**ALICE, **TUS, **OCTETS, "Upload-Length": "2", "Upload-Concat": "partial"},
        content=b"zz",
    )
    assert minters_part.status_code == 201, minters_part.text

    def final(*urls: str) -> dict[str, str]:
        return {
            **token,
            **TUS,
            "Upload-Concat": "final;" + " ".join(urls),
            "Upload-Metadata": meta(path="joined.bin"),
        }

    stolen = await vfolder.client.post(
        vfolder.url("uploads"), headers=final(parts[0], minters_part.headers["location"])
    )
    assert stolen.status_code == 400, stolen.text
    joined = await vfolder.client.post(vfolder.url("uploads"), headers=final(*parts))
    assert joined.status_code == 201, joined.text
    assert (vfolder.root / "joined.bin").read_bytes() == b"abcd"
