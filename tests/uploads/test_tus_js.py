"""tus-js-client (the browser client, run here under Node) against a real server: closed
mid-upload, found again with findPreviousUploads, resumed, byte-exact."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.server import clean_environment, run_cli, serving
from tests.support.services import services_required

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parent / "js" / "resume.cjs"
# Installed once per machine, outside the repository.
NODE_PREFIX = Path(tempfile.gettempdir()) / "storage-proxy-tus-js-client"


def _tus_js_client() -> Path:
    modules = NODE_PREFIX / "node_modules"
    if (modules / "tus-js-client").is_dir():
        return modules
    if shutil.which("npm") is None or shutil.which("node") is None:
        reason = "node and npm are needed to run tus-js-client"
    else:
        NODE_PREFIX.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(NODE_PREFIX),
                "--no-audit",
                "--no-fund",
                "tus-js-client@4",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode == 0:
            return modules
        reason = f"npm install tus-js-client failed: {result.stderr[-500:]}"
    if services_required():
        pytest.fail(reason, pytrace=False)
    pytest.skip(f"SKIPPED FOR MISSING SERVICE: {reason}")


def test_tus_js_client_resumes_with_find_previous_uploads(tmp_path: Path) -> None:
    modules = _tus_js_client()
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(20 * 1024 * 1024))
    env = clean_environment()
    with serving(cwd=tmp_path, env=env) as server:
        token = run_cli(["token", "--user", "alice"], cwd=tmp_path, env=env).stdout.strip()
        created = httpx.post(
            f"{server.base_url}/v1/vfolders",
            json={"name": "js", "volume": "local"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        endpoint = f"{server.base_url}/v1/vfolders/{created['id']}/uploads"
        node_env = {**os.environ, "NODE_PATH": str(modules)}
        args = ["node", str(SCRIPT), endpoint, str(source), token, str(tmp_path / "urls.json")]
        first = subprocess.run(
            [*args, str(7 * 1024 * 1024)],
            capture_output=True,
            text=True,
            timeout=120,
            env=node_env,
            check=False,
        )
        assert first.returncode == 0 and "aborted" in first.stdout, first.stdout + first.stderr
        second = subprocess.run(
            args, capture_output=True, text=True, timeout=120, env=node_env, check=False
        )
        assert second.returncode == 0, second.stdout + second.stderr
        assert "resuming" in second.stdout and "done" in second.stdout, second.stdout
        hex_id = uuid.UUID(created["id"]).hex
        target = (
            tmp_path
            / "var"
            / "volumes"
            / "local"
            / hex_id[:2]
            / hex_id[2:4]
            / hex_id
            / "js"
            / "from-js.bin"
        )
        assert (
            hashlib.sha256(target.read_bytes()).digest()
            == hashlib.sha256(source.read_bytes()).digest()
        )
