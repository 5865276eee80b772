"""The client-facing ``/upload`` and ``/download`` with the tokens the Manager-facing API mints,
driven as the 23.9 client drives them (aiotusclient 0.1.4; the download's resume path)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from app.backendai.client_tokens import (
    ClientTokenOp,
    ClientTokenRefused,
    ClientTokens,
    client_token_secret,
)
from app.backendai.identity import VFolderId
from app.config import Settings
from drivers.paths import parse_relative_path
from tests.backendai.clients import (
    download_token,
    fetch,
    folder_body,
    list_items,
    patch_chunk,
    put_file,
    token_secret,
    tus_upload,
    upload_token,
)
from tests.backendai.conftest import CLIENT_TOKEN_SECRET, Target
from tests.support.app import JWT_SECRET

CHUNK = 100 * 1024
DATA = bytes(range(256)) * 1000  # 256,000 bytes: 3 chunks of CHUNK


def folder_id(vfid: str) -> uuid.UUID:
    return uuid.UUID(vfid.rsplit("/", 1)[1])


def reclaimed(target: Target, token: str, **changes: Any) -> str:
    """The token with some claims changed, signed again with the target's own secret."""
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(changes)
    return jwt.encode(claims, token_secret(target), algorithm="HS256")


def download(target: Target, token: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return target.http.get(
        target.client_url + "/download", params={"token": token}, headers=headers or {}
    )


def test_a_patch_only_client_uploads_in_three_chunks(target: Target) -> None:
    vfid = target.create_folder()
    token = upload_token(target, vfid, "big.bin", len(DATA))
    offset = 0
    for _ in range(3):
        reply = patch_chunk(target, token, offset, DATA[offset : offset + CHUNK])
        assert reply.status_code == 204, reply.text
        assert int(reply.headers["Upload-Offset"]) == min(offset + CHUNK, len(DATA))
        offset = int(reply.headers["Upload-Offset"])
    assert offset == len(DATA)
    assert fetch(target, vfid, "big.bin").content == DATA


def test_an_upload_replaces_an_existing_file(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "same.txt", b"the old content, longer than the new")
    token = upload_token(target, vfid, "same.txt", 3)
    assert tus_upload(target, token, b"new", chunk_size=CHUNK) == [3]
    assert fetch(target, vfid, "same.txt").content == b"new"


def test_a_nested_non_ascii_upload_lands_at_its_path(target: Target) -> None:
    vfid = target.create_folder()
    mkdir = folder_body(target, vfid, relpath="batch/deep", parents=True, exist_ok=False)
    assert target.call("POST", "/folder/file/mkdir", mkdir).status_code == 204
    token = upload_token(target, vfid, "batch/deep/ünïcode name.txt", len(DATA))
    tus_upload(target, token, DATA, chunk_size=CHUNK)
    assert fetch(target, vfid, "batch/deep/ünïcode name.txt").content == DATA


@pytest.mark.ours_better("the reference never places a 0-byte upload (it finalizes in a PATCH)")
def test_a_zero_byte_upload_appears_without_any_patch(target: Target) -> None:
    vfid = target.create_folder()
    upload_token(target, vfid, "empty.txt", 0)
    items = {item["name"]: item for item in list_items(target, vfid, ".")}
    assert items["empty.txt"]["stat"]["size"] == 0
    assert fetch(target, vfid, "empty.txt").content == b""


def test_a_chunk_larger_than_the_json_body_limit_is_taken(target: Target) -> None:
    """The 23.9 CLI PATCHes 16 MiB chunks: the body streams to disk, it is not capped."""
    vfid = target.create_folder()
    data = DATA * 13  # 3.3 MB in one PATCH
    token = upload_token(target, vfid, "one-chunk.bin", len(data))
    assert tus_upload(target, token, data, chunk_size=len(data)) == [len(data)]
    assert fetch(target, vfid, "one-chunk.bin").content == data


def test_options_tells_the_tus_version(target: Target) -> None:
    reply = target.http.options(target.client_url + "/upload")
    assert reply.status_code in (200, 204)
    assert reply.headers["Tus-Version"] == "1.0.0"
    assert int(reply.headers["Tus-Max-Size"]) > 0


def test_head_tells_where_an_upload_stands(target: Target) -> None:
    vfid = target.create_folder()
    token = upload_token(target, vfid, "half.bin", len(DATA))
    assert patch_chunk(target, token, 0, DATA[:CHUNK]).status_code == 204
    reply = target.http.head(
        target.client_url + "/upload", params={"token": token}, headers={"Tus-Resumable": "1.0.0"}
    )
    assert reply.status_code == 200
    assert reply.headers["Upload-Offset"] == str(CHUNK)
    assert reply.headers["Upload-Length"] == str(len(DATA))


def test_a_download_resumes_with_range_and_if_range(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "big.bin", DATA)
    token = download_token(target, vfid, "big.bin")

    whole = download(target, token)
    assert whole.status_code == 200
    assert int(whole.headers["Content-Length"]) == len(DATA)
    assert whole.content == DATA
    last_modified = whole.headers["Last-Modified"]

    n = 150_000
    resumed = download(target, token, {"Range": f"bytes={n}-", "If-Range": last_modified})
    assert resumed.status_code == 206
    assert resumed.headers["Content-Range"] == f"bytes {n}-{len(DATA) - 1}/{len(DATA)}"
    assert int(resumed.headers["Content-Length"]) == len(DATA) - n
    assert resumed.content == DATA[n:]

    part = download(target, token, {"Range": "bytes=1024-2047"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 1024-2047/{len(DATA)}"
    assert part.content == DATA[1024:2048]


@pytest.mark.ours_better("ETag, Accept-Ranges, and a stale If-Range gets the whole file")
def test_a_download_carries_validators(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "v.bin", DATA)
    token = download_token(target, vfid, "v.bin")
    whole = download(target, token)
    assert whole.headers["ETag"] and whole.headers["Accept-Ranges"] == "bytes"
    stale = download(
        target, token, {"Range": "bytes=10-", "If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    assert stale.status_code == 200
    assert stale.content == DATA
    head = target.http.head(target.client_url + "/download", params={"token": token})
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(DATA))


def _refused(reply: httpx.Response) -> None:
    assert 400 <= reply.status_code < 500, reply.text


def test_a_tampered_token_is_refused(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "secret.txt", b"secret")
    token = download_token(target, vfid, "secret.txt")
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["relpath"] = "other.txt"
    forged = jwt.encode(claims, "not-the-secret-0123456789abcdef0123456789", algorithm="HS256")
    flipped = (
        f"{header}.{payload}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"
    )
    for bad in (forged, flipped, "not-a-jwt"):
        _refused(download(target, bad))
        _refused(patch_chunk(target, bad, 0, b"x"))


def test_an_expired_token_is_refused(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "old.txt", b"old")
    expired = reclaimed(target, download_token(target, vfid, "old.txt"), exp=int(time.time()) - 60)
    _refused(download(target, expired))
    upload = reclaimed(target, upload_token(target, vfid, "new.txt", 1), exp=int(time.time()) - 60)
    _refused(patch_chunk(target, upload, 0, b"x"))


def test_a_token_of_the_other_operation_is_refused(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "a.txt", b"aaa")
    down = download_token(target, vfid, "a.txt")
    up = upload_token(target, vfid, "a.txt", 3)
    _refused(download(target, up))
    _refused(patch_chunk(target, down, 0, b"bbb"))
    assert fetch(target, vfid, "a.txt").content == b"aaa"


@pytest.mark.ours_better("401 or 403 problem+json by cause; the reference answers 400 to all")
def test_token_refusals_are_problems(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "a.txt", b"aaa")
    down = download_token(target, vfid, "a.txt")
    expired = reclaimed(target, down, exp=int(time.time()) - 60)
    unverified = (download(target, expired), download(target, "x.y.z"))
    for reply in (*unverified, target.http.get(target.client_url + "/download")):
        assert reply.status_code == 401
        assert reply.headers["content-type"] == "application/problem+json"
    up = upload_token(target, vfid, "a.txt", 3)
    for reply in (download(target, up), patch_chunk(target, down, 0, b"bbb")):
        assert reply.status_code == 403
        assert reply.headers["content-type"] == "application/problem+json"


@pytest.mark.ours_better("a token names its folder again at every use: a folder gone is 404")
def test_a_token_for_a_deleted_folder_is_refused(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "a.txt", b"aaa")
    token = download_token(target, vfid, "a.txt")
    other_scope = reclaimed(
        target, token, vfid=target.new_vfid().rsplit("/", 1)[0] + "/" + vfid.rsplit("/", 1)[1]
    )
    assert download(target, other_scope).status_code == 404


@pytest.mark.ours_only("looks at the uploaded file through /v1")
def test_a_file_uploaded_through_upload_is_visible_via_v1(target: Target) -> None:
    vfid = target.create_folder()
    put_file(target, vfid, "seen.txt", b"seen by v1")
    reply = target.v1("GET", f"/v1/vfolders/{folder_id(vfid)}/files/seen.txt")
    assert reply.status_code == 200
    assert reply.content == b"seen by v1"


@pytest.mark.ours_better("the folder's quota (set through /v1) holds for Manager uploads")
def test_the_folder_quota_refuses_an_oversized_upload(target: Target) -> None:
    vfid = target.create_folder()
    quota = target.v1("PUT", f"/v1/quotas/vfolder/{folder_id(vfid)}", json={"limit_bytes": 1000})
    assert quota.is_success, quota.text
    reply = target.call(
        "POST", "/folder/file/upload", folder_body(target, vfid, relpath="big.bin", size=5000)
    )
    assert 400 <= reply.status_code < 500
    body = reply.json()
    assert "quota" in body["msg"].lower() or body.get("errno") == 122
    fits = upload_token(target, vfid, "small.bin", 500)
    assert tus_upload(target, fits, b"s" * 500, chunk_size=CHUNK) == [500]


# -- the tokens themselves (no server) ---------------------------------------------------


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, jwt_secret=JWT_SECRET, **values)


def test_the_client_token_secret_is_the_setting_else_derived_in_dev_only() -> None:
    configured = _settings(env="prod", manager_client_token_secret=CLIENT_TOKEN_SECRET)
    assert client_token_secret(configured) == CLIENT_TOKEN_SECRET
    derived = client_token_secret(_settings(env="dev"))
    assert derived and derived != JWT_SECRET
    assert derived == client_token_secret(_settings(env="dev"))
    assert client_token_secret(_settings(env="prod")) is None
    with pytest.raises(ClientTokenRefused):
        ClientTokens(None, 60).verify("x.y.z", ClientTokenOp.DOWNLOAD)


def test_a_token_of_another_audience_is_refused() -> None:
    """Our /v1 transfer tokens and user tokens never pass for a client token, even when
    signed with the same secret."""
    tokens = ClientTokens(CLIENT_TOKEN_SECRET, 60)
    vfid = VFolderId.parse(f"user:{uuid.uuid4()}/{uuid.uuid4().hex}")
    good = tokens.mint_download(volume="local", vfid=vfid, relpath="a.txt")
    assert tokens.verify(good, ClientTokenOp.DOWNLOAD).relpath == parse_relative_path("a.txt")
    claims = jwt.decode(good, options={"verify_signature": False})
    for audience in ("storage-proxy:transfer", None):
        changed = (
            {**claims, "aud": audience}
            if audience
            else {k: v for k, v in claims.items() if k != "aud"}
        )
        forged = jwt.encode(changed, CLIENT_TOKEN_SECRET, algorithm="HS256")
        with pytest.raises(ClientTokenRefused):
            tokens.verify(forged, ClientTokenOp.DOWNLOAD)
    escaping = jwt.encode({**claims, "relpath": "../x"}, CLIENT_TOKEN_SECRET, algorithm="HS256")
    with pytest.raises(ClientTokenRefused):
        tokens.verify(escaping, ClientTokenOp.DOWNLOAD)
