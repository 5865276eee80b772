"""Three proxy processes behind an imaginary load balancer without sticky sessions, sharing
PostgreSQL, Redis and one volume: an upload's chunks go round-robin to all three; a rename on
one node is seen by the other two on their very next request; a scheduled job runs once per
period in the whole cluster, not once per node."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import time
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import text

from app.db.engine import create_engine
from tests.support.server import clean_environment, run_cli, serving
from tests.support.services import postgres_schema, redis_url

pytestmark = pytest.mark.slow

KEY = "three-nodes-service-key-0123456789abcdef01234567"
AUTH = {"Authorization": f"Bearer {KEY}", "X-Act-As-User": "alice"}
MIB = 1024 * 1024
INTERVAL = 1.0  # the reconciliation schedule, in seconds


async def _scheduled_tasks(database: str) -> list[tuple[str, str, int]]:
    engine = create_engine(database)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT target, state, attempts FROM tasks "
                    "WHERE kind = 'reconcile-volume' ORDER BY created_at"
                )
            )
            return [(row[0], row[1], row[2]) for row in rows]
    finally:
        await engine.dispose()


def test_three_nodes_share_uploads_renames_and_schedules(tmp_path: Path) -> None:
    with postgres_schema() as database:
        env = clean_environment(
            STORAGE_ENV="dev",
            STORAGE_DATABASE_URL=database,
            STORAGE_REDIS_URL=redis_url(),
            STORAGE_REDIS_KEY_PREFIX=f"sp-three-{secrets.token_hex(4)}:",
            STORAGE_SERVICE_KEYS=KEY,
            STORAGE_DATA_DIR=str(tmp_path / "shared"),
            STORAGE_USAGE_SCAN_INTERVAL_SECONDS=str(INTERVAL),
            STORAGE_TASK_POLL_SECONDS="0.2",
        )
        assert run_cli(["migrate"], cwd=tmp_path, env=env).returncode == 0
        first_period = int(time.time() // INTERVAL)
        with contextlib.ExitStack() as stack:
            nodes = [stack.enter_context(serving(cwd=tmp_path, env=env)) for _ in range(3)]
            started = time.monotonic()
            urls = [node.base_url for node in nodes]
            made = httpx.post(
                f"{urls[0]}/v1/vfolders", json={"name": "shared", "volume": "local"}, headers=AUTH
            )
            assert made.status_code == 201, made.text
            vfolder = f"/v1/vfolders/{made.json()['id']}"

            # A tus upload whose chunks each go to the next node.
            data = os.urandom(6 * MIB)
            tus = {**AUTH, "Tus-Resumable": "1.0.0"}
            created = httpx.post(
                f"{urls[0]}{vfolder}/uploads",
                headers={
                    **tus,
                    "Upload-Length": str(len(data)),
                    "Upload-Metadata": "path " + base64.b64encode(b"rr.bin").decode(),
                },
            )
            assert created.status_code == 201, created.text
            for n, offset in enumerate(range(0, len(data), MIB)):
                patched = httpx.patch(
                    urls[n % 3] + created.headers["location"],
                    content=data[offset : offset + MIB],
                    headers={
                        **tus,
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/offset+octet-stream",
                    },
                    timeout=30,
                )
                assert patched.status_code == 204, (n, patched.text)
            downloaded = httpx.get(f"{urls[2]}{vfolder}/files/rr.bin", headers=AUTH)
            assert hashlib.sha256(downloaded.content).digest() == hashlib.sha256(data).digest()

            # Nodes 2 and 3 have the vfolder cached; node 1 renames it.
            for url in urls[1:]:
                assert httpx.get(f"{url}{vfolder}", headers=AUTH).json()["name"] == "shared"
            renamed = httpx.patch(f"{urls[0]}{vfolder}", json={"name": "moved"}, headers=AUTH)
            assert renamed.status_code == 200, renamed.text
            for url in urls[1:]:
                assert httpx.get(f"{url}{vfolder}", headers=AUTH).json()["name"] == "moved"

            # Each node's schedule fires every second; each period's task runs once.
            time.sleep(max(0.0, 4.5 * INTERVAL - (time.monotonic() - started)))
        last_period = int(time.time() // INTERVAL)
        tasks = anyio.run(_scheduled_tasks, database)
    # Three schedules firing every period would queue about three tasks per period.
    periods = last_period - first_period + 1
    assert 2 <= len(tasks) <= periods, (tasks, periods)
    assert all(target == "local" for target, _, _ in tasks)
    assert all(attempts == 1 for _, state, attempts in tasks if state == "succeeded")
