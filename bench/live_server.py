"""A real storage-proxy process for benchmarks: one vfolder, its path on disk, and the
server's memory figures."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

KEY = "bench-service-key-0123456789abcdef0123456789"
JWT_SECRET = secrets.token_urlsafe(32)


@dataclass
class LiveServer:
    base_url: str
    pid: int
    vfolder_url: str
    vfolder_root: Path
    volume_root: Path

    def rss_kib(self) -> int:
        return _status_kib(self.pid, "VmRSS")

    def peak_rss_kib(self) -> int:
        return _status_kib(self.pid, "VmHWM")

    def cpu_seconds(self) -> float:
        """User and system time the server process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset_peak(self) -> None:
        """Linux: writing 5 to clear_refs resets VmHWM to the current RSS."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_answering(url: str, process: subprocess.Popen[bytes], within: float = 30) -> None:
    """Until ``url`` answers 200; raises if ``process`` exits first or ``within`` passes."""
    deadline = time.monotonic() + within
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{url} did not answer: the server did not start")
        time.sleep(0.1)


@contextmanager
def live_server(
    workdir: Path,
    *,
    redis_url: str | None = None,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[LiveServer]:
    """Started on the embedded SQLite in ``workdir`` (or on ``database_url``, migrated first),
    and Redis when given, with one vfolder owned by "bench"."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
    env.update(STORAGE_SERVICE_KEYS=KEY, STORAGE_LOG_LEVEL="WARNING", **(extra_env or {}))
    if redis_url:
        env.update(STORAGE_REDIS_URL=redis_url, STORAGE_REDIS_KEY_PREFIX=f"bench-{port}:")
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    if database_url:
        # Not the embedded database: prod rules apply, which want a real JWT secret.
        env.update(STORAGE_DATABASE_URL=database_url, STORAGE_JWT_SECRET=JWT_SECRET)
        command.append("--migrate")
    log = workdir / "server.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_answering(f"{base_url}/health/ready", process)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; its log:\n{log.read_text()[-3000:]}") from None
        created = httpx.post(
            f"{base_url}/v1/vfolders",
            json={"name": "bench", "volume": "local", "owner_id": "bench"},
            headers={"Authorization": f"Bearer {KEY}"},
        ).json()
        hex_id = uuid.UUID(created["id"]).hex
        volume = (workdir / "var" / "volumes" / "local").resolve()
        yield LiveServer(
            base_url=base_url,
            pid=process.pid,
            vfolder_url=f"{base_url}/v1/vfolders/{created['id']}",
            vfolder_root=volume / hex_id[:2] / hex_id[2:4] / hex_id,
            volume_root=volume,
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


AUTH = {"Authorization": f"Bearer {KEY}"}
