"""Server processes for tests, forked from one process that has already imported the app.

Importing the app costs a server about two CPU-seconds before it serves anything, and the suite
starts dozens of servers. A zygote per test process pays that once: it imports ``app.cli`` and
``app.main`` (nothing runs at import: no loop, no thread, no connection), then forks a child
per server. The child becomes exactly what ``python -m app.cli ARGS`` would have been, in the
working directory and environment it is given, its output appended to a log file: it runs the
same ``main``, which starts, serves and stops as a freshly spawned process does. Tests talk to it
over the network and signal it by pid, as they would any server.

Not for what reads the environment at import time or spawns interpreters of its own
(``serve --workers N`` and prometheus-client's multiprocess mode): those start a fresh
interpreter (``tests/support/server.py`` decides).

The zygote speaks JSON lines on its stdin and stdout: ``{"spawn": {...}}`` answers the pid,
``{"poll": pid}`` its exit status or null (it reaps only the child asked about, so a pid is
never reused while a test may still signal it)."""

from __future__ import annotations

import atexit
import importlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
from functools import cache
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]


class ForkedProcess:
    """The part of ``subprocess.Popen`` that tests use, for a server the zygote forked."""

    def __init__(self, zygote: Zygote, pid: int, args: list[str]) -> None:
        self._zygote = zygote
        self.pid = pid
        self.args = args
        self.returncode: int | None = None
        self.stdout: IO[str] | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._zygote.poll(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(0.02)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # not reaped: the pid is still this process's
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.zygote"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lock = threading.Lock()

    def _ask(self, request: dict[str, Any]) -> Any:
        assert self._process.stdin is not None and self._process.stdout is not None
        with self._lock:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            answer = self._process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the test zygote exited with {self._process.poll()}")
        return json.loads(answer)

    def spawn(self, args: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> ForkedProcess:
        request = {"spawn": {"args": args, "cwd": str(cwd), "env": env, "log": str(log)}}
        pid: int = self._ask(request)["pid"]
        return ForkedProcess(self, pid, args)

    def poll(self, pid: int) -> int | None:
        code: int | None = self._ask({"poll": pid})["returncode"]
        return code

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()  # the zygote kills what it still runs, and exits
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()


@cache
def zygote() -> Zygote:
    """This test process's zygote, started on first use."""
    started = Zygote()
    atexit.register(started.close)
    return started


# -- the zygote process --------------------------------------------------------------------------


def _become_server(args: list[str], cwd: str, env: dict[str, str], log: str) -> None:
    """In the forked child: the process ``python -m app.cli ARGS`` would have been."""
    code = 1
    try:
        os.chdir(cwd)
        output = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        nothing = os.open(os.devnull, os.O_RDONLY)
        os.dup2(nothing, 0)
        os.close(nothing)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = [sys.argv[0], *args]
        random.seed()  # not the sequence every sibling inherited

        from app.cli import main

        code = main(args)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve_requests(requests: IO[str], answers: IO[str]) -> None:
    children: set[int] = set()
    try:
        for line in requests:
            request = json.loads(line)
            if "spawn" in request:
                pid = os.fork()
                if pid == 0:
                    answers.close()
                    _become_server(**request["spawn"])
                children.add(pid)
                answer: dict[str, Any] = {"pid": pid}
            else:
                pid = request["poll"]
                done, status = os.waitpid(pid, os.WNOHANG)
                code = os.waitstatus_to_exitcode(status) if done else None
                if done:
                    children.discard(pid)
                answer = {"returncode": code}
            answers.write(json.dumps(answer) + "\n")
            answers.flush()
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def _main() -> None:
    # The answers go to a private copy of stdout; whatever else prints goes to stderr.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    for module in ("app.cli", "app.main"):  # the point: imported once, before any fork
        importlib.import_module(module)
    _serve_requests(sys.stdin, answers)


if __name__ == "__main__":
    _main()
