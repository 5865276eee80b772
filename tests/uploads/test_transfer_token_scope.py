"""A transfer token handed to a browser or a tus client carries its minter's identity but only
a sliver of their rights: through it, nobody learns the minter's other uploads or where they
are going."""

from __future__ import annotations

from typing import Any

import httpx

from tests.files.conftest import ALICE, VFolderHandle
from tests.uploads.test_tus_protocol import TUS, meta


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
