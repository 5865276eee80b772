"""Small-request rate: `wrk` against our server's cheapest routes, and against a bare FastAPI
"hello" on the same server stack (uvicorn + uvloop + httptools, one process) in the same run.
Prints requests/s (median of the runs), the ratio to the bare app, and the server's CPU per
request, which is the stable figure on a noisy 2-core machine.

    .venv/bin/python bench/request_rate.py [--seconds 5] [--connections 32] [--runs 3]

Needs `wrk` (Debian package). wrk is one C thread here: when the server's CPU per second of
the run is well under one core, the client was the limit, and the output says so.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_server import KEY, free_port, live_server, wait_until_answering

HELLO_APP = textwrap.dedent(
    """
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    uvicorn.run(app, host="127.0.0.1", port={port}, loop="uvloop", http="httptools",
                log_level="warning", access_log=False)
    """
)
# A wrk script that sends the Authorization header on every request.
AUTH_SCRIPT = 'wrk.headers["Authorization"] = "Bearer {key}"\n'


@dataclass
class Rate:
    requests_per_second: float
    cpu_ms_per_request: float
    server_cores: float  # server CPU seconds per second of the run


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    url: str,
    *,
    pid: int | None = None,
    cpu: Callable[[], float] | None = None,
    seconds: int,
    connections: int,
    script: Path | None,
) -> Rate:
    """``wrk`` for ``seconds``; the server's CPU comes from ``pid`` or from ``cpu`` (seconds
    used so far by every process of the server)."""
    if cpu is None:
        assert pid is not None
        cpu = partial(cpu_seconds, pid)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    before = cpu()
    started = time.monotonic()
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    elapsed = time.monotonic() - started
    used = cpu() - before
    done = re.search(r"(\d+) requests in", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if done is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    if non_2xx is not None:
        raise RuntimeError(f"{url}: {non_2xx.group(1)} answers were not 2xx:\n{output}")
    requests = int(done.group(1))
    return Rate(requests / elapsed, 1000 * used / max(requests, 1), used / elapsed)


@contextmanager
def hello_server(workdir: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    script = workdir / "hello.py"
    script.write_text(HELLO_APP.replace("{port}", str(port)))
    process = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/hello"
    try:
        wait_until_answering(url, process)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def median_rate(rates: list[Rate]) -> Rate:
    return Rate(
        statistics.median(r.requests_per_second for r in rates),
        statistics.median(r.cpu_ms_per_request for r in rates),
        statistics.median(r.server_cores for r in rates),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")

    def measure(url: str, pid: int, script: Path | None) -> Rate:
        run_wrk(url, pid=pid, seconds=1, connections=args.connections, script=script)  # warm-up
        return median_rate(
            [
                run_wrk(
                    url, pid=pid, seconds=args.seconds, connections=args.connections, script=script
                )
                for _ in range(args.runs)
            ]
        )

    results: dict[str, Rate] = {}
    with tempfile.TemporaryDirectory(prefix="bench-rate-") as tmp:
        workdir = Path(tmp)
        auth = workdir / "auth.lua"
        auth.write_text(AUTH_SCRIPT.format(key=KEY))
        with hello_server(workdir) as (url, pid):
            results["bare FastAPI hello"] = measure(url, pid, None)
        (workdir / "ours").mkdir()
        with live_server(workdir / "ours") as server:
            results["ours: GET /health/live (no auth)"] = measure(
                f"{server.base_url}/health/live", server.pid, None
            )
            results["ours: GET /v1/vfolders/{id} (authenticated)"] = measure(
                server.vfolder_url, server.pid, auth
            )
            results["ours: GET /v1/volumes (authenticated)"] = measure(
                f"{server.base_url}/v1/volumes", server.pid, auth
            )

    hello = results["bare FastAPI hello"].requests_per_second
    print(
        f"\n== wrk, 1 thread, {args.connections} connections, {args.seconds} s, "
        f"median of {args.runs} runs"
    )
    print(f"{'workload':46s} {'req/s':>9s} {'÷ hello':>8s} {'server CPU/req':>15s} {'cores':>6s}")
    for name, rate in results.items():
        limited = "  (client-bound)" if rate.server_cores < 0.8 else ""
        print(
            f"{name:46s} {rate.requests_per_second:9,.0f} {rate.requests_per_second / hello:8.2f} "
            f"{rate.cpu_ms_per_request:12.3f} ms {rate.server_cores:6.2f}{limited}"
        )


if __name__ == "__main__":
    main()
