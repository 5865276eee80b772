"""The operator's database goes away: while the service runs, every request that needs it
answers 503 ``/problems/unavailable`` with ``Retry-After`` (never a 500), and the service
recovers by itself when the database is back; at start, the CLI says in one line which
setting points where, and exits non-zero without a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import clean_environment, free_port, run_cli, serving
from tests.support.services import PG_HOST, PG_PORT, postgres_schema
from tests.support.tcp_proxy import TcpProxyThread

pytestmark = pytest.mark.slow

KEY = "database-outage-service-key-0123456789abcdef"
SERVICE = {"Authorization": f"Bearer {KEY}", "X-Act-As-User": "alice"}


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/unavailable"
    assert int(response.headers["retry-after"]) > 0


def test_a_database_lost_while_running_answers_503_then_recovers(tmp_path: Path) -> None:
    with postgres_schema() as url, TcpProxyThread(PG_HOST, PG_PORT) as proxy:
        env = clean_environment(
            STORAGE_ENV="dev", STORAGE_SERVICE_KEYS=KEY, STORAGE_TASK_POLL_SECONDS="0.2"
        )
        migrated = run_cli(["migrate"], cwd=tmp_path, env={**env, "STORAGE_DATABASE_URL": url})
        assert migrated.returncode == 0, migrated.stderr
        env["STORAGE_DATABASE_URL"] = url.replace(f"{PG_HOST}:{PG_PORT}", proxy.url_host)
        with (
            serving(cwd=tmp_path, env=env) as server,
            httpx.Client(base_url=server.base_url, headers=SERVICE, timeout=30) as http,
        ):
            made = http.post("/v1/vfolders", json={"name": "kept", "volume": "local"})
            assert made.status_code == 201, made.text
            vfolder = made.json()["id"]

            proxy.cut()
            assert_unavailable(http.get("/v1/vfolders"))
            assert_unavailable(http.get(f"/v1/vfolders/{vfolder}"))
            assert_unavailable(http.post("/v1/vfolders", json={"name": "new", "volume": "local"}))
            assert_unavailable(http.put(f"/v1/vfolders/{vfolder}/files/a.txt", content=b"a"))
            assert http.get("/health/ready").status_code == 503
            deadline = time.monotonic() + 10  # until a background pass has failed too
            while "task runner: the database is unavailable" not in server.output():
                assert time.monotonic() < deadline, server.output()
                time.sleep(0.1)
            assert "Traceback" not in server.output()

            proxy.restore()
            deadline = time.monotonic() + 20
            while (listed := http.get("/v1/vfolders")).status_code != 200:
                assert time.monotonic() < deadline, listed.text
                time.sleep(0.2)
            assert [v["name"] for v in listed.json()["items"]] == ["kept"]


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["migrate"]])
def test_a_database_unreachable_at_start_is_one_clear_line(
    tmp_path: Path, command: list[str]
) -> None:
    """Nothing listens on the port STORAGE_DATABASE_URL names."""
    port = free_port()
    env = clean_environment(
        STORAGE_ENV="dev",
        STORAGE_DATABASE_URL=f"postgresql+asyncpg://storage:s3cret@127.0.0.1:{port}/storage",
    )
    result = run_cli(command, cwd=tmp_path, env=env)
    assert result.returncode not in (0, None)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "STORAGE_DATABASE_URL" in lines[0]
    assert f"127.0.0.1:{port}" in lines[0]
    assert "s3cret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
