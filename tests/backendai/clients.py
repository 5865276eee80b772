"""The 23.9 client's side of the file calls, as the contract tests drive it: a token from the
Manager-facing API, then the client-facing ``/upload`` (aiotusclient 0.1.4: PATCH only, from
offset 0) or ``/download``."""

from __future__ import annotations

import os
from typing import Any

import httpx

from tests.backendai.conftest import CLIENT_TOKEN_SECRET, Target

TUS_HEADERS = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}
REFERENCE_TOKEN_SECRET = os.environ.get(
    "REF_JWT_SECRET", "reference-storage-proxy-jwt-secret-0123456789"
)


def token_secret(target: Target) -> str:
    """What signs the target's upload and download tokens (to forge expired ones)."""
    return REFERENCE_TOKEN_SECRET if target.is_reference else CLIENT_TOKEN_SECRET


def folder_body(target: Target, vfid: str, **fields: Any) -> dict[str, Any]:
    return {"volume": target.volume, "vfid": vfid, **fields}


def upload_token(target: Target, vfid: str, relpath: str, size: int) -> str:
    reply = target.call(
        "POST", "/folder/file/upload", folder_body(target, vfid, relpath=relpath, size=size)
    )
    assert reply.status_code == 200, reply.text
    token: str = reply.json()["token"]
    return token


def download_token(target: Target, vfid: str, relpath: str) -> str:
    body = folder_body(target, vfid, relpath=relpath, archive=False, unmanaged_path=None)
    reply = target.call("POST", "/folder/file/download", body)
    assert reply.status_code == 200, reply.text
    token: str = reply.json()["token"]
    return token


def patch_chunk(target: Target, token: str, offset: int, chunk: bytes) -> httpx.Response:
    """One PATCH exactly as aiotusclient 0.1.4 sends it (lower-case ``upload-offset``)."""
    return target.http.patch(
        target.client_url + "/upload",
        params={"token": token},
        headers={**TUS_HEADERS, "upload-offset": str(offset)},
        content=chunk,
    )


def tus_upload(target: Target, token: str, data: bytes, *, chunk_size: int) -> list[int]:
    """PATCHes from offset 0, each next offset read from the reply; the offsets returned."""
    offsets = []
    offset = 0
    while offset < len(data):
        reply = patch_chunk(target, token, offset, data[offset : offset + chunk_size])
        assert reply.status_code == 204, reply.text
        offset = int(reply.headers["Upload-Offset"])
        offsets.append(offset)
    return offsets


def put_file(target: Target, vfid: str, relpath: str, data: bytes) -> None:
    token = upload_token(target, vfid, relpath, len(data))
    if data:
        tus_upload(target, token, data, chunk_size=1 << 20)


def fetch(target: Target, vfid: str, relpath: str) -> httpx.Response:
    return target.call("POST", "/folder/file/fetch", folder_body(target, vfid, relpath=relpath))


def list_items(target: Target, vfid: str, relpath: str) -> list[dict[str, Any]]:
    reply = target.call("POST", "/folder/file/list", folder_body(target, vfid, relpath=relpath))
    assert reply.status_code == 200, reply.text
    items: list[dict[str, Any]] = reply.json()["items"]
    return items


def names(target: Target, vfid: str, relpath: str) -> set[str]:
    return {item["name"] for item in list_items(target, vfid, relpath)}
