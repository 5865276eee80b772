"""Two proxy processes sharing PostgreSQL, Redis and the volume: a change on one holds on the
other from the very next request."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest

from tests.support.server import clean_environment, run_cli, serving
from tests.support.services import postgres_schema, redis_url

pytestmark = pytest.mark.slow

KEY = "multinode-service-key-0123456789abcdef0123456789"


def test_revocation_on_node_a_holds_on_node_b(tmp_path: Path) -> None:
    redis = redis_url()
    with postgres_schema() as database:
        env = clean_environment(
            STORAGE_ENV="dev",
            STORAGE_DATABASE_URL=database,
            STORAGE_REDIS_URL=redis,
            STORAGE_REDIS_KEY_PREFIX=f"sp-multinode-{secrets.token_hex(4)}:",
            STORAGE_SERVICE_KEYS=KEY,
            STORAGE_DATA_DIR=str(tmp_path / "shared"),
        )
        assert run_cli(["migrate"], cwd=tmp_path, env=env).returncode == 0
        bob_token = run_cli(["token", "--user", "bob"], cwd=tmp_path, env=env).stdout.strip()
        service = {"Authorization": f"Bearer {KEY}"}
        bob = {"Authorization": f"Bearer {bob_token}"}
        with (
            serving(cwd=tmp_path, env=env) as node_a,
            serving(cwd=tmp_path, env=env) as node_b,
            httpx.Client(base_url=node_a.base_url) as a,
            httpx.Client(base_url=node_b.base_url) as b,
        ):
            created = a.post(
                "/v1/vfolders",
                json={"name": "shared", "volume": "local", "owner_id": "alice"},
                headers=service,
            )
            url = f"/v1/vfolders/{created.json()['id']}"
            a.put(f"{url}/files/f.txt", content=b"data", headers=service)
            for round_ in range(10):
                granted = a.put(f"{url}/grants/user/bob", json={"mode": "ro"}, headers=service)
                assert granted.status_code == 201, granted.text
                assert b.get(f"{url}/files/f.txt", headers=bob).status_code == 200, round_
                assert b.get(url, headers=bob).json()["mode"] == "ro"
                assert a.delete(f"{url}/grants/user/bob", headers=service).status_code == 204
                assert b.get(f"{url}/files/f.txt", headers=bob).status_code == 404, round_
                assert b.get(url, headers=bob).status_code == 404, round_
            renamed = a.patch(url, json={"name": "renamed"}, headers=service)
            assert renamed.status_code == 200
            assert b.get(url, headers=service).json()["name"] == "renamed"
