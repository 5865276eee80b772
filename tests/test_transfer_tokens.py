"""Transfer tokens: one vfolder, one path or prefix, one operation, the minter's rights as a
ceiling at every use."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import httpx
import jwt
import pytest

from tests.support.app import AUDIENCE, JWT_SECRET, SERVICE, bearer, user_token
from tests.support.server import clean_environment, run_cli, serving

BOB = bearer(user_token("bob"))


async def _vfolder(client: httpx.AsyncClient) -> str:
    created = await client.post(
        "/v1/vfolders",
        json={"name": "shared", "volume": "local", "owner_id": "alice"},
        headers=SERVICE,
    )
    url = f"/v1/vfolders/{created.json()['id']}"
    await client.put(
        f"{url}/files/docs/a.txt", params={"parents": "true"}, content=b"A", headers=SERVICE
    )
    await client.put(f"{url}/files/docs/b.txt", content=b"B", headers=SERVICE)
    await client.put(f"{url}/files/other.txt", content=b"O", headers=SERVICE)
    return url


async def _mint(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], **body: Any
) -> httpx.Response:
    return await client.post(f"{url}/transfer-tokens", json=body, headers=headers)


async def test_download_link_works_alone_and_only_for_its_file(client: httpx.AsyncClient) -> None:
    url = await _vfolder(client)
    minted = await _mint(client, url, SERVICE, operation="download", path="docs/a.txt")
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]
    link = minted.json()["url"]
    assert link.endswith(f"?token={token}")
    got = await client.get(link)
    assert got.status_code == 200 and got.content == b"A"
    assert (await client.head(link)).status_code == 200
    as_header = await client.get(f"{url}/files/docs/a.txt", headers=bearer(token))
    assert as_header.content == b"A"

    for method, target in [
        ("GET", f"{url}/files/docs/b.txt"),
        ("PUT", f"{url}/files/docs/a.txt"),
        ("GET", f"{url}/list"),
        ("GET", f"{url}/stat?path=docs/a.txt"),
        ("GET", url),
        ("GET", "/v1/vfolders"),
        ("POST", f"{url}/transfer-tokens"),
    ]:
        response = await client.request(method, target, headers=bearer(token), content=b"x")
        assert response.status_code == 403, (method, target, response.text)
        assert response.json()["type"] == "/problems/transfer-token-scope"


async def test_prefix_and_upload_tokens(client: httpx.AsyncClient) -> None:
    url = await _vfolder(client)
    prefix = (
        await _mint(client, url, SERVICE, operation="download", path="docs", prefix=True)
    ).json()
    assert prefix["url"] is None
    for name, content in (("a.txt", b"A"), ("b.txt", b"B")):
        got = await client.get(f"{url}/files/docs/{name}", params={"token": prefix["token"]})
        assert got.content == content
    outside = await client.get(f"{url}/files/other.txt", params={"token": prefix["token"]})
    assert outside.status_code == 403

    upload = (
        await _mint(client, url, SERVICE, operation="upload", path="inbox", prefix=True)
    ).json()
    put = await client.put(
        f"{url}/files/inbox/new.bin", params={"token": upload["token"]}, content=b"N"
    )
    assert put.status_code == 404  # inbox does not exist yet: the token does not create rights
    put = await client.put(
        f"{url}/files/inbox/new.bin",
        params={"token": upload["token"], "parents": "true"},
        content=b"N",
    )
    assert put.status_code == 201, put.text
    assert (
        await client.get(f"{url}/files/inbox/new.bin", params={"token": upload["token"]})
    ).status_code == 403  # an upload token does not download
    escaped = await client.put(
        f"{url}/files/other.txt", params={"token": upload["token"]}, content=b"evil"
    )
    assert escaped.status_code == 403


async def test_rights_are_a_ceiling_and_revocation_kills_tokens(client: httpx.AsyncClient) -> None:
    url = await _vfolder(client)
    await client.put(f"{url}/grants/user/bob", json={"mode": "ro"}, headers=SERVICE)
    refused = await _mint(client, url, BOB, operation="upload", path="x.bin")
    assert refused.status_code == 403
    token = (await _mint(client, url, BOB, operation="download", path="docs/a.txt")).json()["token"]
    assert (await client.get(f"{url}/files/docs/a.txt", params={"token": token})).status_code == 200
    await client.delete(f"{url}/grants/user/bob", headers=SERVICE)
    after = await client.get(f"{url}/files/docs/a.txt", params={"token": token})
    assert after.status_code == 404
    stranger = await _mint(
        client, url, bearer(user_token("eve")), operation="download", path="docs/a.txt"
    )
    assert stranger.status_code == 404


def _forged(**overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "alice",
        "kind": "user",
        "groups": [],
        "managed_groups": [],
        "role": "user",
        "aud": AUDIENCE + ":transfer",
        "iat": now,
        "nbf": now,
        "exp": now + 6 * 3600,  # minted at collection: each must fail for its own fault
        "jti": "j",
        "vfolder": "00000000-0000-4000-8000-000000000000",
        "path": "a",
        "prefix": False,
        "op": "download",
    }
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, JWT_SECRET)


@pytest.mark.parametrize(
    "token",
    [
        _forged(exp=int(time.time()) - 3600),
        _forged(op="delete-everything"),
        _forged(jti=None),
        _forged(vfolder="not-a-uuid"),
        # Signed, yet checked again: a scope path that is not one the minter could produce.
        _forged(path="../../etc"),
        _forged(path="/etc"),
        _forged(path="docs/../docs/a.txt"),
        _forged(path="docs/a.txt\x00"),
        _forged(path=["docs", "a.txt"]),
        jwt.encode(
            {"aud": AUDIENCE + ":transfer", "exp": int(time.time()) + 6 * 3600, "sub": "x"},
            "wrong-secret-of-sufficient-length-0123456789",
        ),
    ],
)
async def test_bad_transfer_tokens_are_401(client: httpx.AsyncClient, token: str) -> None:
    url = await _vfolder(client)
    response = await client.get(f"{url}/files/docs/a.txt", params={"token": token})
    assert response.status_code == 401, response.text
    assert response.json()["type"] == "/problems/unauthenticated"


@pytest.mark.slow
def test_download_link_works_with_plain_curl(tmp_path: Any) -> None:
    env = clean_environment()
    with serving(cwd=tmp_path, env=env) as server:
        token = run_cli(["token", "--user", "alice"], cwd=tmp_path, env=env).stdout.strip()
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.base_url, headers=auth) as http:
            vfolder = http.post("/v1/vfolders", json={"name": "c", "volume": "local"}).json()
            base = f"/v1/vfolders/{vfolder['id']}"
            http.put(f"{base}/files/report.csv", content=b"a,b\n1,2\n")
            link = http.post(
                f"{base}/transfer-tokens", json={"operation": "download", "path": "report.csv"}
            ).json()["url"]
        result = subprocess.run(
            ["curl", "-sf", server.base_url + link], capture_output=True, timeout=30, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"a,b\n1,2\n"


async def test_only_transfer_tokens_ride_in_urls(client: httpx.AsyncClient) -> None:
    url = await _vfolder(client)
    from tests.support.app import SERVICE_KEY

    for token in (SERVICE_KEY, user_token("alice")):
        response = await client.get(f"{url}/files/docs/a.txt", params={"token": token})
        assert response.status_code == 401
        assert "only transfer tokens" in response.json()["detail"]
