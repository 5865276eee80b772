"""The race a quota must win: 40 clients at once, each sending 10 MiB by tus or by PUT, against
100 MiB — on a real server, on SQLite and on PostgreSQL. Exactly 10 succeed, the other 30 are
refused with the quota problem, and the bytes on disk never exceed the limit at any moment."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.server import clean_environment, run_cli, serving
from tests.support.services import postgres_schema

pytestmark = pytest.mark.slow

KEY = "quota-race-service-key-0123456789abcdef0123456"
SERVICE = {"Authorization": f"Bearer {KEY}"}
MIB = 1024 * 1024
EACH = 10 * MIB
LIMIT = 100 * MIB
CLIENTS = 40


@dataclass(frozen=True)
class Case:
    scope: str  # the scope holding the 100 MiB limit
    vfolders: int  # the clients spread over this many vfolders of that scope


CASES = {
    "vfolder": Case("vfolder", 1),
    "user": Case("user", 4),
    "group": Case("group", 4),
}


@contextlib.contextmanager
def _database(kind: str, workdir: Path) -> Iterator[dict[str, str]]:
    if kind == "sqlite":
        yield {}
        return
    with postgres_schema() as url:
        env = clean_environment(STORAGE_ENV="dev", STORAGE_DATABASE_URL=url)
        assert run_cli(["migrate"], cwd=workdir, env=env).returncode == 0
        yield {"STORAGE_DATABASE_URL": url, "STORAGE_ENV": "dev"}


class DiskWatcher:
    """Samples the bytes of every file under the volume (vfolders and staging) non-stop."""

    def __init__(self, volume: Path) -> None:
        self._volume = volume
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DiskWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_bytes(self._volume))
            self.samples += 1


def _tree_bytes(root: Path) -> int:
    """One sample. A file renamed from staging into its vfolder while the walk runs is met
    twice: counted once, by inode."""
    sizes: dict[tuple[int, int], int] = {}
    stack = [str(root)]
    while stack:
        with (
            contextlib.suppress(FileNotFoundError, NotADirectoryError),
            os.scandir(stack.pop()) as entries,
        ):
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        sizes[(st.st_dev, st.st_ino)] = st.st_size
    return sum(sizes.values())


def _as(case: Case) -> dict[str, str]:
    if case.scope == "group":
        return {**SERVICE, "X-Act-As-User": "carol", "X-Act-As-Groups": "lab"}
    return {**SERVICE, "X-Act-As-User": "alice"}


def _setup(base_url: str, case: Case) -> list[str]:
    owner = {"owner_type": "group", "owner_id": "lab"} if case.scope == "group" else {}
    owner = owner or {"owner_type": "user", "owner_id": "alice"}
    ids = []
    for n in range(case.vfolders):
        made = httpx.post(
            f"{base_url}/v1/vfolders",
            json={"name": f"race-{n}-{secrets.token_hex(3)}", "volume": "local", **owner},
            headers=SERVICE,
        )
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    scope_id = {"vfolder": ids[0], "user": "alice", "group": "lab"}[case.scope]
    limited = httpx.put(
        f"{base_url}/v1/quotas/{case.scope}/{scope_id}",
        params={} if case.scope == "vfolder" else {"volume": "local"},
        json={"limit_bytes": LIMIT},
        headers=SERVICE,
    )
    assert limited.status_code == 200, limited.text
    return ids


def _put_with_curl(
    base_url: str, vfolder_id: str, name: str, source: bytes | Path, case: Case
) -> int:
    """curl sends `Expect: 100-continue`: a refused PUT is answered before its body is sent,
    as a real client would see it."""
    assert isinstance(source, Path)
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", str(source)]
    for header, value in _as(case).items():
        args += ["-H", f"{header}: {value}"]
    url = f"{base_url}/v1/vfolders/{vfolder_id}/files/{name}"
    done = subprocess.run([*args, url], capture_output=True, text=True, timeout=120, check=True)
    return int(done.stdout)


def _tus(base_url: str, vfolder_id: str, name: str, data: bytes | Path, case: Case) -> int:
    assert isinstance(data, bytes)
    headers = {**_as(case), "Tus-Resumable": "1.0.0"}
    with httpx.Client(headers=headers, timeout=120) as http:
        created = http.post(
            f"{base_url}/v1/vfolders/{vfolder_id}/uploads",
            headers={
                "Upload-Length": str(len(data)),
                "Upload-Metadata": f"path {base64.b64encode(name.encode()).decode()}",
            },
        )
        if created.status_code != 201:
            assert created.json()["type"] == "/problems/quota-exceeded", created.text
            return created.status_code
        patched = http.patch(
            base_url + created.headers["location"],
            content=data,
            headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        )
        return patched.status_code


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
@pytest.mark.parametrize("scope", sorted(CASES))
def test_forty_concurrent_writers_cannot_beat_a_100_mib_quota(
    tmp_path: Path, database: str, scope: str
) -> None:
    case = CASES[scope]
    data = os.urandom(EACH)
    source = tmp_path / "ten-mib.bin"
    source.write_bytes(data)
    with _database(database, tmp_path) as db_env:
        env = clean_environment(
            STORAGE_SERVICE_KEYS=KEY,
            STORAGE_DATA_DIR=str(tmp_path / "var"),
            **db_env,
        )
        with serving(cwd=tmp_path, env=env) as server:
            ids = _setup(server.base_url, case)
            volume = tmp_path / "var" / "volumes" / "local"
            with DiskWatcher(volume) as disk, ThreadPoolExecutor(CLIENTS) as pool:
                futures = [
                    pool.submit(
                        _tus if n % 2 else _put_with_curl,
                        server.base_url,
                        ids[n % len(ids)],
                        f"c{n}.bin",
                        data if n % 2 else source,
                        case,
                    )
                    for n in range(CLIENTS)
                ]
                statuses = [future.result() for future in futures]
                time.sleep(0.05)
            stored = sum(
                1 for vfolder_id in ids for _ in _vfolder_dir(volume, vfolder_id).iterdir()
            )
    succeeded = sum(1 for status in statuses if status in {200, 201, 204})
    assert succeeded == LIMIT // EACH, statuses
    assert sorted(set(statuses) - {200, 201, 204}) == [413], statuses
    assert stored == succeeded
    assert disk.samples > 10
    assert disk.peak <= LIMIT, f"{disk.peak - LIMIT} bytes over the limit on disk"


def _vfolder_dir(volume: Path, vfolder_id: str) -> Path:
    hex_id = vfolder_id.replace("-", "")
    return volume / hex_id[:2] / hex_id[2:4] / hex_id
