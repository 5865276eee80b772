"""A real ``storage-proxy`` process on a free port, for tests about the wire and the CLI."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import httpx

from app.observability.metrics import MULTIPROCESS_DIR_ENV
from tests.support.zygote import zygote

CLI = [sys.executable, "-m", "app.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_environment(**storage: str) -> dict[str, str]:
    """The caller's environment without any STORAGE_* setting, plus ``storage`` (and no
    scheduled usage scan unless asked for: see ``make_settings``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
    env["STORAGE_USAGE_SCAN_INTERVAL_SECONDS"] = str(24 * 3600)
    env.update(storage)
    return env


def run_cli(
    args: Sequence[str], *, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


class ServerProcess(Protocol):
    """A server's process: a ``subprocess.Popen``, or one forked by the zygote."""

    pid: int
    returncode: int | None
    stdout: IO[str] | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


# Set to 1 to start every test server as a fresh interpreter instead of a zygote's fork.
FRESH_SERVERS_ENV = "STORAGE_TEST_FRESH_SERVERS"


def _forkable(args: Sequence[str], env: dict[str, str]) -> bool:
    """What a fork of the zygote serves exactly as a fresh interpreter would: not worker
    processes (spawned interpreters of their own) nor metrics read from the environment
    prometheus-client saw at import."""
    return (
        os.environ.get(FRESH_SERVERS_ENV) != "1"
        and "--workers" not in args
        and MULTIPROCESS_DIR_ENV not in env
    )


@dataclass
class Server:
    base_url: str
    process: ServerProcess
    started_at: float
    ready_after: float
    log_path: Path
    cwd: Path
    # Kept when the server has ended: its log file goes with it.
    final_output: str | None = None

    def output(self) -> str:
        """Everything the server printed so far (its log, at the default level: INFO)."""
        if self.final_output is not None:
            return self.final_output
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serving(
    *,
    cwd: Path,
    env: dict[str, str],
    extra_args: Sequence[str] = (),
    ready_within: float = 30.0,
    fresh_interpreter: bool = False,
) -> Iterator[Server]:
    """``process.stdout`` reads what the server printed, as a pipe would, but the server
    writes to a file: at INFO it would fill a pipe nobody reads, and block. The process is a
    fork of this test process's zygote (``tests/support/zygote.py``) unless
    ``fresh_interpreter`` or the arguments need a fresh one."""
    port = free_port()
    started = time.monotonic()
    args = ["serve", "--port", str(port), *extra_args]
    with tempfile.TemporaryDirectory(prefix="storage-proxy-server-") as logs:
        log_path = Path(logs) / "output.log"
        log_path.touch()  # there for reading before the server writes to it
        process: ServerProcess
        if not fresh_interpreter and _forkable(args, env):
            process = zygote().spawn(args, cwd=cwd, env=env, log=log_path)
        else:
            # O_APPEND: reading never moves the server's writes.
            with log_path.open("ab") as sink:
                process = subprocess.Popen(
                    [*CLI, *args],
                    cwd=cwd,
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
        process.stdout = log_path.open(encoding="utf-8", errors="replace")
        base_url = f"http://127.0.0.1:{port}"
        server: Server | None = None
        try:
            ready_after = _wait_ready(base_url, process, log_path, started, ready_within)
            server = Server(base_url, process, started, ready_after, log_path, cwd)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            # A test may still read what it has not read yet once the server is gone.
            if not process.stdout.closed:
                unread = process.stdout.read()
                process.stdout.close()
                process.stdout = io.StringIO(unread)
            if server is not None:
                server.final_output = log_path.read_text(encoding="utf-8", errors="replace")


def _wait_ready(
    base_url: str, process: ServerProcess, log_path: Path, started: float, within: float
) -> float:
    while time.monotonic() - started < within:
        if process.poll() is not None:
            output = log_path.read_text(encoding="utf-8", errors="replace")
            raise AssertionError(f"server exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base_url}/health/ready not 200 within {within} s")
