"""Kill -9 the node running a clone half-way: another node sharing PostgreSQL and the volume
takes the task over once its lease runs out, and the clone completes byte-exact, as the same
task (one more attempt), with nothing left in staging."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import Server, clean_environment, run_cli, serving
from tests.support.services import postgres_schema
from tests.vfolders.test_clone import tree

pytestmark = pytest.mark.slow

KEY = "clone-takeover-service-key-0123456789abcdef0123"
AUTH = {"Authorization": f"Bearer {KEY}", "X-Act-As-User": "alice"}


def _task(server: Server, location: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.base_url}{location}", headers=AUTH).json()
    return body


def _root(data_dir: Path, vfolder_id: str) -> Path:
    hex_id = vfolder_id.replace("-", "")
    return data_dir / "volumes" / "local" / hex_id[:2] / hex_id[2:4] / hex_id


def test_a_clone_survives_the_death_of_its_node(tmp_path: Path) -> None:
    data_dir = tmp_path / "shared"
    with postgres_schema() as database:
        env = clean_environment(
            STORAGE_ENV="dev",
            STORAGE_DATABASE_URL=database,
            STORAGE_SERVICE_KEYS=KEY,
            STORAGE_DATA_DIR=str(data_dir),
            STORAGE_TASK_LEASE_SECONDS="1.5",
            STORAGE_TASK_POLL_SECONDS="0.2",
        )
        assert run_cli(["migrate"], cwd=tmp_path, env=env).returncode == 0
        with serving(cwd=tmp_path, env=env) as a, serving(cwd=tmp_path, env=env) as b:
            made = httpx.post(
                f"{a.base_url}/v1/vfolders",
                json={"name": f"src-{secrets.token_hex(3)}", "volume": "local"},
                headers=AUTH,
            )
            source = made.json()["id"]
            root = _root(data_dir, source)
            for d in range(20):  # 2,000 small files: a tree worth copying
                (root / f"d{d}").mkdir()
                for f in range(100):
                    (root / f"d{d}" / f"f{f}").write_bytes(os.urandom(16 * 1024))
            # The copy is one flush of the filesystem at the end, not an fsync per file, so
            # small files alone are cloned in a fraction of a second, before the test can catch
            # the node at work. 512 MiB to copy and flush keep it busy for seconds.
            chunk = os.urandom(1 << 20)
            for big in range(4):
                with (root / f"big{big}").open("wb") as out:
                    for _ in range(128):
                        out.write(chunk)
            (root / "link").symlink_to("d0/f0")
            (root / "empty").mkdir()
            httpx.post(f"{a.base_url}/v1/vfolders/{source}/reconcile", headers=AUTH)

            started = httpx.post(
                f"{a.base_url}/v1/vfolders/{source}/clone",
                json={"name": "copy", "volume": "local"},
                headers=AUTH,
            )
            assert started.status_code == 202, started.text
            location = started.headers["location"]
            deadline = time.monotonic() + 30
            while True:  # until a node is well into it
                task = _task(a, location)
                if task["state"] == "running" and task["progress"]["current"] > 0:
                    break
                assert task["state"] in {"queued", "running"}, task
                assert time.monotonic() < deadline, task
                time.sleep(0.02)
            pid = int(task["node"].split(":")[1])
            victim, survivor = (a, b) if pid == a.process.pid else (b, a)
            assert pid == victim.process.pid
            victim.process.kill()
            victim.process.wait()

            deadline = time.monotonic() + 60
            while (task := _task(survivor, location))["state"] not in {"succeeded", "failed"}:
                assert time.monotonic() < deadline, task
                time.sleep(0.1)
            assert task["state"] == "succeeded", task
            assert task["attempts"] == 2
            target = started.json()["vfolder"]["id"]
            assert tree(_root(data_dir, target)) == tree(root)
            staging = data_dir / "volumes" / "local" / ".staging"
            assert not [p for p in staging.iterdir() if p.name.startswith("copy-")]
            got = httpx.get(f"{survivor.base_url}/v1/vfolders/{target}", headers=AUTH).json()
            assert got["status"] == "ready"
