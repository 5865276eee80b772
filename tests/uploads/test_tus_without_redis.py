"""Redis goes away mid-upload: tus goes on (the upload lease lives in the database), on one
node and across several, still one writer at a time, and the bytes arrive intact."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.app import bearer, client_for, make_settings, user_token
from tests.support.server import clean_environment, run_cli, serving
from tests.support.services import (
    REDIS_HOST,
    REDIS_PORT,
    postgres_schema,
    redis_url,
    redis_url_via,
)
from tests.support.tcp_proxy import TcpProxy, TcpProxyThread
from tests.support.tus_wire import tus_patch

ALICE = bearer(user_token("alice"))
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}
KEY = "tus-no-redis-service-key-0123456789abcdef0123456"
MIB = 1024 * 1024


async def test_a_node_that_loses_redis_keeps_taking_patches(
    tmp_path: Path, database_url: str, redis: str
) -> None:
    proxy = TcpProxy(REDIS_HOST, REDIS_PORT)
    await proxy.start()
    settings = make_settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url_via(proxy.url_host),
    )
    data = os.urandom(3 * 100_000)
    try:
        async with client_for(settings) as client:
            made = await client.post(
                "/v1/vfolders", json={"name": "no-redis", "volume": "local"}, headers=ALICE
            )
            assert made.status_code == 201, made.text
            vfolder = f"/v1/vfolders/{made.json()['id']}"
            created = await client.post(
                f"{vfolder}/uploads",
                headers={
                    **ALICE,
                    **TUS,
                    "Upload-Length": str(len(data)),
                    "Upload-Metadata": "path " + base64.b64encode(b"f.bin").decode(),
                },
            )
            assert created.status_code == 201, created.text
            url = created.headers["location"]
            for n, offset in enumerate(range(0, len(data), 100_000)):
                if n == 1:
                    await proxy.cut()  # Redis unreachable from here on
                patched = await client.patch(
                    url,
                    headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": str(offset)},
                    content=data[offset : offset + 100_000],
                )
                assert patched.status_code == 204, (n, patched.text)
            got = await client.get(f"{vfolder}/files/f.bin", headers=ALICE)
            assert got.content == data
    finally:
        await proxy.cut()


def _patch(base_url: str, upload: str, offset: int, data: bytes) -> httpx.Response:
    auth = {"Authorization": f"Bearer {KEY}", "X-Act-As-User": "alice"}
    return tus_patch(base_url + upload, offset, data, headers=auth, timeout=30)


@pytest.mark.slow
def test_three_nodes_upload_round_robin_while_redis_is_down(tmp_path: Path) -> None:
    redis_url()  # Redis is needed: a loud skip, or a failure in CI, without it
    auth = {"Authorization": f"Bearer {KEY}", "X-Act-As-User": "alice"}
    with postgres_schema() as database, TcpProxyThread(REDIS_HOST, REDIS_PORT) as redis_link:
        env = clean_environment(
            STORAGE_ENV="dev",
            STORAGE_DATABASE_URL=database,
            STORAGE_REDIS_URL=redis_url_via(redis_link.url_host),
            STORAGE_REDIS_KEY_PREFIX=f"sp-tus-no-redis-{secrets.token_hex(4)}:",
            STORAGE_SERVICE_KEYS=KEY,
            STORAGE_DATA_DIR=str(tmp_path / "shared"),
        )
        assert run_cli(["migrate"], cwd=tmp_path, env=env).returncode == 0
        with contextlib.ExitStack() as stack:
            urls = [stack.enter_context(serving(cwd=tmp_path, env=env)).base_url for _ in range(3)]
            made = httpx.post(
                f"{urls[0]}/v1/vfolders", json={"name": "rr", "volume": "local"}, headers=auth
            )
            assert made.status_code == 201, made.text
            vfolder = f"/v1/vfolders/{made.json()['id']}"
            data = os.urandom(10 * MIB)
            created = httpx.post(
                f"{urls[0]}{vfolder}/uploads",
                headers={
                    **auth,
                    **TUS,
                    "Upload-Length": str(len(data)),
                    "Upload-Metadata": "path " + base64.b64encode(b"rr.bin").decode(),
                },
            )
            assert created.status_code == 201, created.text
            upload = created.headers["location"]
            chunks = [(offset, data[offset : offset + MIB]) for offset in range(0, len(data), MIB)]

            for n in (0, 1):  # Redis up
                assert _patch(urls[n % 3], upload, *chunks[n]).status_code == 204
            redis_link.cut()  # Redis down for every node
            for n in (2, 3, 4, 5):
                patched = _patch(urls[n % 3], upload, *chunks[n])
                assert patched.status_code == 204, (n, patched.text)

            # Three nodes race to append the same chunk: exactly one writes it.
            statuses: list[int] = []
            racers = [
                threading.Thread(
                    target=lambda url=url: statuses.append(
                        _patch(url, upload, *chunks[6]).status_code
                    )
                )
                for url in urls
            ]
            for racer in racers:
                racer.start()
            for racer in racers:
                racer.join()
            assert statuses.count(204) == 1 and set(statuses) <= {204, 409, 423}, statuses
            head = httpx.head(f"{urls[1]}{upload}", headers={**auth, **TUS})
            assert head.headers["upload-offset"] == str(7 * MIB)

            redis_link.restore()  # Redis is back: still one keeper of the lease
            time.sleep(0.5)
            for n in (7, 8, 9):
                patched = _patch(urls[n % 3], upload, *chunks[n])
                assert patched.status_code == 204, (n, patched.text)
            got = httpx.get(f"{urls[2]}{vfolder}/files/rr.bin", headers=auth)
            assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
