"""The operator's situation: a node is killed (kill -9) while three writers are mid-way — a PUT,
a browser form upload and a tus PATCH. Their reservations held the quota for hours and their
staging files stayed forever, so the owner got 413 with the space free. Now, once the dead
node is known dead (its lease ran out), its reservations are released and a write that fits
succeeds; the sweep removes the staging files of the dead PUT and form upload (and logs each),
and leaves the live tus upload's file, which then resumes."""

from __future__ import annotations

import os
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import Server, clean_environment, run_cli, serving
from tests.support.services import postgres_schema
from tests.support.tus_wire import tus_patch

pytestmark = pytest.mark.slow

KEY = "abandoned-writes-service-key-0123456789abcdef01"
SERVICE = {"Authorization": f"Bearer {KEY}"}
ALICE = {**SERVICE, "X-Act-As-User": "alice"}
TUS = {**ALICE, "Tus-Resumable": "1.0.0"}
MIB = 1024 * 1024
LIMIT = 12 * MIB
BOUNDARY = "sp-boundary-0123456789"


@contextmanager
def _database(kind: str) -> Iterator[dict[str, str]]:
    if kind == "sqlite":
        yield {}
        return
    with postgres_schema() as url:
        yield {"STORAGE_ENV": "dev", "STORAGE_DATABASE_URL": url}


def _until(check: Callable[[], bool], what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        time.sleep(0.1)


def _open(server: Server, head: str, first_bytes: bytes) -> socket.socket:
    """A request whose body stops half-way: its writer is at work when the node dies."""
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(head.encode() + first_bytes)
    return sock


def _request_head(method: str, target: str, headers: dict[str, str], length: int) -> str:
    lines = [f"{method} {target} HTTP/1.1", "Host: proxy", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


def _quota(server: Server, vfolder_id: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(
        f"{server.base_url}/v1/quotas/vfolder/{vfolder_id}", headers=SERVICE
    ).json()
    return body


def _patch(server: Server, upload: str, offset: int, data: bytes) -> httpx.Response:
    return tus_patch(f"{server.base_url}{upload}", offset, data, headers=TUS)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_killed_node_gives_back_its_writers_quota_and_staging_files(
    tmp_path: Path, database: str
) -> None:
    data_dir = tmp_path / "data"
    staging = data_dir / "volumes" / "local" / ".staging"
    with _database(database) as db_env:
        env = clean_environment(
            STORAGE_SERVICE_KEYS=KEY,
            STORAGE_DATA_DIR=str(data_dir),
            STORAGE_TASK_LEASE_SECONDS="1.5",
            STORAGE_TASK_POLL_SECONDS="0.2",
            STORAGE_UPLOAD_LOCK_TTL_SECONDS="2",
            STORAGE_STAGING_GRACE_SECONDS="1",
            # The abandoned-work sweep runs every tenth of this: every 3 s.
            STORAGE_UPLOAD_EXPIRY_SECONDS="30",
            **db_env,
        )
        if db_env:
            assert run_cli(["migrate"], cwd=tmp_path, env=env).returncode == 0
        tus_data = os.urandom(4 * MIB)
        with ExitStack() as open_requests, serving(cwd=tmp_path, env=env) as doomed:
            made = httpx.post(
                f"{doomed.base_url}/v1/vfolders",
                json={"name": f"w-{secrets.token_hex(3)}", "volume": "local", "owner_id": "alice"},
                headers=SERVICE,
            )
            assert made.status_code == 201, made.text
            vfolder_id = made.json()["id"]
            vfolder = f"/v1/vfolders/{vfolder_id}"
            limited = httpx.put(
                f"{doomed.base_url}/v1/quotas/vfolder/{vfolder_id}",
                json={"limit_bytes": LIMIT},
                headers=SERVICE,
            )
            assert limited.status_code == 200, limited.text

            # tus: 4 MiB reserved at creation, 1 MiB acknowledged, then a PATCH mid-way.
            created = httpx.post(
                f"{doomed.base_url}{vfolder}/uploads",
                headers={**TUS, "Upload-Length": str(4 * MIB), "Upload-Metadata": "path dC5iaW4="},
            )
            assert created.status_code == 201, created.text
            upload = created.headers["location"]
            assert _patch(doomed, upload, 0, tus_data[:MIB]).status_code == 204
            patching = _open(
                doomed,
                _request_head(
                    "PATCH",
                    upload,
                    {
                        **TUS,
                        "Upload-Offset": str(MIB),
                        "Content-Type": "application/offset+octet-stream",
                    },
                    3 * MIB,
                ),
                tus_data[MIB : 2 * MIB],
            )
            open_requests.callback(patching.close)
            # PUT: 4 MiB reserved from its Content-Length, 1 MiB sent.
            putting = _open(
                doomed,
                _request_head("PUT", f"{vfolder}/files/put.bin", ALICE, 4 * MIB),
                b"p" * MIB,
            )
            open_requests.callback(putting.close)
            # Form upload: reserved as its bytes arrive, 1 MiB sent of a 4 MiB part.
            part_head = (
                f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=files; "
                'filename="form.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            form_length = len(part_head) + 4 * MIB + len(f"\r\n--{BOUNDARY}--\r\n")
            uploading = _open(
                doomed,
                _request_head(
                    "POST",
                    f"{vfolder}/upload",
                    {**ALICE, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
                    form_length,
                ),
                part_head + b"f" * MIB,
            )
            open_requests.callback(uploading.close)

            def writers_at_work() -> bool:
                sizes = {p.name: p.stat().st_size for p in staging.iterdir()}
                puts = [size for name, size in sizes.items() if name.startswith("put-")]
                return (
                    len(puts) == 2
                    and all(puts)
                    and _quota(doomed, vfolder_id)["reserved_bytes"] > 8 * MIB
                )

            _until(writers_at_work, "three writers holding quota and staging files")
            time.sleep(0.3)
            doomed.process.kill()  # kill -9, mid-PUT, mid-form, mid-PATCH
            doomed.process.wait()
        left_behind = sorted(p.name for p in staging.iterdir() if p.name.startswith("put-"))
        assert len(left_behind) == 2
        tus_file = f"tus-{uuid.UUID(upload.rsplit('/', 1)[1]).hex}"
        assert (staging / tus_file).exists()

        with serving(cwd=tmp_path, env=env) as restarted:
            # Once the dead node's lease has run out, its writers' reservations go.
            _until(
                lambda: _quota(restarted, vfolder_id)["reserved_bytes"] == 0,
                "the dead node's reservations released",
            )
            fits = httpx.put(
                f"{restarted.base_url}{vfolder}/files/fits.bin",
                content=b"x" * (8 * MIB),
                headers=ALICE,
                timeout=60,
            )
            assert fits.status_code == 201, fits.text  # 413 while the dead held 9 MiB

            # The sweep removes the dead PUT's and form's staging files, not the live upload's.
            _until(
                lambda: not any(p.name.startswith("put-") for p in staging.iterdir()),
                "the staging files of the dead PUT and form upload removed",
            )
            assert (staging / tus_file).exists()

            # The tus upload resumes where it was acknowledged, reserving its length again.
            head = httpx.head(f"{restarted.base_url}{upload}", headers=TUS)
            offset = int(head.headers["upload-offset"])
            assert offset >= MIB

            def resumed() -> bool:
                status = _patch(restarted, upload, offset, tus_data[offset:]).status_code
                assert status in {204, 423}, status  # 423 until the dead writer's lease ends
                return status == 204

            _until(resumed, "the tus upload resumed")
            quota = _quota(restarted, vfolder_id)
            assert (quota["used_bytes"], quota["reserved_bytes"]) == (LIMIT, 0)
            assert not any(staging.iterdir())
            got = httpx.get(f"{restarted.base_url}{vfolder}/files/t.bin", headers=ALICE)
            assert got.content == tus_data
        # Matched on the raw lines, whatever the log format puts where.
        lines = restarted.output().splitlines()
        swept = {
            name
            for name in left_behind
            for line in lines
            if "removed an abandoned staging file" in line and name in line
        }
        assert swept == set(left_behind), lines
        released = [line for line in lines if "released an abandoned quota reservation" in line]
        assert len(released) == 3, lines  # the PUT's, the form's, the PATCH's
