"""A real ``storage-proxy`` process on a free port, for tests about the wire and the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

CLI = [sys.executable, "-m", "app.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_environment(**storage: str) -> dict[str, str]:
    """The caller's environment without any STORAGE_* setting, plus ``storage``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
    env.update(storage)
    return env


def run_cli(
    args: Sequence[str], *, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[str]
    started_at: float
    ready_after: float
    # What the process printed (its logs), once it has ended: its pipe is closed by then.
    output: str = ""


@contextmanager
def serving(
    *,
    cwd: Path,
    env: dict[str, str],
    extra_args: Sequence[str] = (),
    ready_within: float = 10.0,
) -> Iterator[Server]:
    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), *extra_args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    server: Server | None = None
    try:
        ready_after = _wait_ready(base_url, process, started, ready_within)
        server = Server(base_url, process, started, ready_after)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output = _close_output(process)
        if server is not None:
            server.output = output


def _close_output(process: subprocess.Popen[str]) -> str:
    """The rest of an ended process's output; its pipe, left open, is a ResourceWarning."""
    if process.stdout is None or process.stdout.closed:
        return ""
    with process.stdout:
        return process.stdout.read()


def _wait_ready(
    base_url: str, process: subprocess.Popen[str], started: float, within: float
) -> float:
    while time.monotonic() - started < within:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"server exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base_url}/health/ready not 200 within {within} s")
