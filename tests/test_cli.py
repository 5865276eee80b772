"""The command line and a real server process, as a new user meets them: every server here is
a fresh `python -m app.cli serve`, not a fork of the test zygote."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import jwt
import pytest

from app import __version__
from tests.support.server import clean_environment, run_cli, serving
from tests.support.services import postgres_schema

pytestmark = pytest.mark.slow


def test_version(tmp_path: Path) -> None:
    result = run_cli(["version"], cwd=tmp_path, env=clean_environment())
    assert result.returncode == 0
    assert result.stdout.strip() == __version__


def test_token_is_a_jwt_with_the_configured_secret(tmp_path: Path) -> None:
    secret = "s" * 40
    env = clean_environment(STORAGE_JWT_SECRET=secret)
    result = run_cli(
        ["token", "--user", "alice", "--group", "g1", "--group", "g2", "--role", "admin"],
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(
        result.stdout.strip(), secret, algorithms=["HS256"], audience="storage-proxy"
    )
    assert claims["sub"] == "alice" and claims["groups"] == ["g1", "g2"]
    assert claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == 3600


def test_openapi_command_writes_the_committed_spec(tmp_path: Path) -> None:
    out = tmp_path / "spec.yaml"
    result = run_cli(["openapi", "--output", str(out)], cwd=tmp_path, env=clean_environment())
    assert result.returncode == 0, result.stderr
    committed = Path(__file__).resolve().parents[1] / "openapi" / "openapi.yaml"
    assert out.read_text() == committed.read_text()


def test_prod_with_placeholder_secrets_refuses_to_start(tmp_path: Path) -> None:
    result = run_cli(["serve"], cwd=tmp_path, env=clean_environment(STORAGE_ENV="prod"))
    assert result.returncode == 2
    assert "placeholder secrets" in result.stderr


def test_fresh_directory_serves_the_tour(tmp_path: Path) -> None:
    """The README's promise: zero setup, the curl tour works."""
    env = clean_environment()
    with serving(cwd=tmp_path, env=env, fresh_interpreter=True) as server:
        token = run_cli(["token", "--user", "alice"], cwd=tmp_path, env=env).stdout.strip()
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.base_url, headers=auth) as http:
            created = http.post("/v1/vfolders", json={"name": "my-data", "volume": "local"})
            assert created.status_code == 201, created.text
            listed = http.get("/v1/vfolders").json()
            assert [v["name"] for v in listed["items"]] == ["my-data"]
    assert (tmp_path / "var" / "storage-proxy.sqlite3").is_file()
    assert (tmp_path / "var" / "volumes" / "local").is_dir()


def test_swagger_ui_needs_no_outside_network(tmp_path: Path) -> None:
    with serving(cwd=tmp_path, env=clean_environment(), fresh_interpreter=True) as server:
        page = httpx.get(f"{server.base_url}/docs")
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: *["']([^"']+)["']""", page.text)
        assets = [a or b for a, b in urls]
        assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
        for asset in assets:
            assert asset.startswith("/"), f"/docs loads {asset} from outside the proxy"
            assert httpx.get(f"{server.base_url}{asset}").status_code == 200, asset
        assert "cdn" not in page.text.lower()


def test_postgres_needs_migrate_then_serves(tmp_path: Path) -> None:
    with postgres_schema() as url:
        env = clean_environment(STORAGE_ENV="dev", STORAGE_DATABASE_URL=url)
        # Port 1 is never bound: the schema check stops the server before it listens.
        refused = run_cli(["serve", "--port", "1"], cwd=tmp_path, env=env)
        assert refused.returncode != 0
        assert "storage-proxy migrate" in refused.stdout + refused.stderr

        migrated = run_cli(["migrate"], cwd=tmp_path, env=env)
        assert migrated.returncode == 0, migrated.stderr
        with serving(cwd=tmp_path, env=env, extra_args=["--workers", "2"]) as server:
            ready = httpx.get(f"{server.base_url}/health/ready").json()
            assert ready["checks"]["database"]["status"] == "ok"


def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    tour = readme.split("## A 60-second tour", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = clean_environment()
    with serving(cwd=tmp_path, env=env, fresh_interpreter=True) as server:
        # Only the port differs from the README (6021 may be taken on a test machine).
        assert "API=http://127.0.0.1:6021\n" in tour
        result = subprocess.run(
            [
                "bash",
                "-euo",
                "pipefail",
                "-c",
                tour.replace("http://127.0.0.1:6021", server.base_url),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert '"name":"my-data"' in result.stdout
        assert '"backend":"posix"' in result.stdout


def test_scan_shows_progress_and_prints_the_report(tmp_path: Path) -> None:
    key = "cli-scan-service-key-0123456789abcdef0123456789"
    env = clean_environment(STORAGE_SERVICE_KEYS=key)
    with serving(cwd=tmp_path, env=env, fresh_interpreter=True) as server:
        for n in range(3):
            made = httpx.post(
                f"{server.base_url}/v1/vfolders",
                json={"name": f"s{n}", "volume": "local", "owner_id": "alice"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert made.status_code == 201
        scanned = run_cli(["scan", "local", "--url", server.base_url], cwd=tmp_path, env=env)
        assert scanned.returncode == 0, scanned.stderr
        task = json.loads(scanned.stdout)
        assert task["state"] == "succeeded"
        assert task["result"]["vfolders_scanned"] == 3
        assert "3/3 vfolders (100%)" in scanned.stderr  # the bar, drawn with \r
        watched = run_cli(
            ["tasks", "watch", task["id"], "--url", server.base_url], cwd=tmp_path, env=env
        )
        assert watched.returncode == 0 and json.loads(watched.stdout)["id"] == task["id"]


def test_serve_with_workers_never_serves_what_another_worker_changed(tmp_path: Path) -> None:
    key = "cli-workers-service-key-0123456789abcdef0123456"
    env = clean_environment(STORAGE_SERVICE_KEYS=key)
    auth = {"Authorization": f"Bearer {key}"}
    with serving(cwd=tmp_path, env=env, extra_args=["--workers", "2"], ready_within=30) as server:
        made = httpx.post(
            f"{server.base_url}/v1/vfolders",
            json={"name": "before", "volume": "local", "owner_id": "alice"},
            headers=auth,
        )
        url = f"{server.base_url}/v1/vfolders/{made.json()['id']}"
        for _ in range(20):  # new connections: both workers read (and could cache) it
            assert httpx.get(url, headers=auth).json()["name"] == "before"
        assert httpx.patch(url, json={"name": "after"}, headers=auth).status_code == 200
        names = {httpx.get(url, headers=auth).json()["name"] for _ in range(20)}
        assert names == {"after"}


@pytest.mark.parametrize(
    ("volumes", "message"),
    [
        ('[volumes.v]\nbackend = "tape"\npath = "VOL"\n', "unknown driver 'tape'"),
        ('[volumes.v]\npath = "VOL"\nreadonly = true\n', "unknown key 'readonly'"),
        ('[volumes.v]\npath = "VOL"\noptions = { dirmode = "0o700" }\n', "no option 'dirmode'"),
    ],
)
def test_serve_refuses_a_volumes_file_it_would_misread(
    tmp_path: Path, volumes: str, message: str
) -> None:
    """An operator's typo stops the start on one line, before any worker is spawned."""
    config = tmp_path / "volumes.toml"
    config.write_text(volumes.replace("VOL", str(tmp_path / "v")))
    result = run_cli(
        ["serve", "--port", "1", "--workers", "2"],
        cwd=tmp_path,
        env=clean_environment(STORAGE_CONFIG=str(config)),
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
