"""Quota cost: PUT throughput of small files from concurrent clients against a real server,
with no quota rows (off) vs a vfolder and a user quota set (on).

    .venv/bin/python bench/quota.py [--files 2000] [--size-kib 64] [--clients 16] [--runs 3]

On: both limits are far beyond anything written (1 TiB, 10 million entries), so no write is
refused but every write takes the reservation path (locks the limit rows, sums usage). Off: no
quota rows at all. Each run measures off and on back to back (the order alternating between
runs) so both see the same machine state; every request writes a new file. The server is the
one in `live_server.py`, on the embedded SQLite only (it takes no database URL), one worker.
The clients are asyncio tasks sharing one `httpx.AsyncClient` in this process; the server's
CPU share is printed so a client-bound figure shows (a single worker tops out near 100 %).
Target: overhead below 15 %.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_server import AUTH, LiveServer, live_server

TARGET = 0.15
WARMUP_FILES = 200
LIMITS = {"limit_bytes": 1 << 40, "limit_files": 10_000_000}
HEADERS = {**AUTH, "X-Act-As-User": "bench", "Content-Type": "application/octet-stream"}


@dataclass
class Figure:
    files_s: float
    mib_s: float
    server_cpu: float  # share of one core used by the server process while timed


def quota_urls(server: LiveServer) -> list[str]:
    vfolder_id = server.vfolder_url.rstrip("/").rsplit("/", 1)[1]
    return [
        f"{server.base_url}/v1/quotas/vfolder/{vfolder_id}",
        f"{server.base_url}/v1/quotas/user/bench?volume=local",
    ]


def set_quotas(server: LiveServer, on: bool) -> None:
    with httpx.Client(headers=AUTH, timeout=30) as http:
        for url in quota_urls(server):
            if on:
                response = http.put(url, json=LIMITS)
                assert response.status_code == 200, response.text
            else:
                response = http.delete(url)
                assert response.status_code in (204, 404), response.text


async def put_files(
    server: LiveServer, names: list[str], body: bytes, clients: int
) -> tuple[float, dict[int, int]]:
    """Seconds to PUT every name with ``clients`` concurrent tasks; the statuses seen."""
    queue = list(reversed(names))
    statuses: dict[int, int] = {}
    errors: list[str] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            response = await client.put(f"files/{queue.pop()}", content=body)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code not in (200, 201) and len(errors) < 5:
                errors.append(f"{response.status_code}: {response.text[:300]}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=server.vfolder_url + "/", headers=HEADERS, timeout=60, limits=limits
    ) as client:
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        elapsed = time.perf_counter() - began
    for error in errors:
        print(f"  server refused a PUT: {error}", file=sys.stderr)
    return elapsed, statuses


def measure(
    server: LiveServer, on: bool, prefix: str, files: int, body: bytes, clients: int
) -> Figure:
    set_quotas(server, on)
    names = [f"{prefix}-c{i % clients}-{i}.bin" for i in range(files)]
    cpu_before = server.cpu_seconds()
    elapsed, statuses = asyncio.run(put_files(server, names, body, clients))
    cpu = server.cpu_seconds() - cpu_before
    stored = statuses.get(201, 0) + statuses.get(200, 0)
    if stored != files:
        raise SystemExit(f"{prefix}: only {stored} of {files} PUTs succeeded: {statuses}")
    return Figure(files / elapsed, files * len(body) / elapsed / (1 << 20), cpu / elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000, help="files per figure")
    parser.add_argument("--size-kib", type=int, default=64)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    body = random.randbytes(args.size_kib << 10)
    results: dict[str, list[Figure]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp, live_server(Path(tmp)) as server:
        for label in ("off", "on"):  # warm-up: imports, connections, both code paths
            measure(server, label == "on", f"warmup-{label}", WARMUP_FILES, body, args.clients)
        for run in range(args.runs):
            order = ("off", "on") if run % 2 == 0 else ("on", "off")
            for label in order:
                figure = measure(
                    server, label == "on", f"run{run}-{label}", args.files, body, args.clients
                )
                results[label].append(figure)
                print(
                    f"run {run + 1} quotas {label:<3} {figure.files_s:>8.0f} files/s "
                    f"{figure.mib_s:>7.1f} MiB/s   server CPU {figure.server_cpu:>4.0%}"
                )
        set_quotas(server, False)
    off = statistics.median(f.files_s for f in results["off"])
    on = statistics.median(f.files_s for f in results["on"])
    overhead = (off - on) / off
    print(
        f"\n== PUT of {args.files} x {args.size_kib} KiB files, {args.clients} concurrent "
        f"clients, median of {args.runs} runs"
    )
    for label, name in (("off", "quotas off"), ("on", "quotas on (vfolder + user)")):
        figures = results[label]
        print(
            f"{name:<28}{statistics.median(f.files_s for f in figures):>8.0f} files/s"
            f"{statistics.median(f.mib_s for f in figures):>8.1f} MiB/s"
            f"   server CPU {statistics.median(f.server_cpu for f in figures):>4.0%}"
        )
    verdict = "within" if overhead < TARGET else "OVER"
    print(f"{'overhead (off - on) / off':<28}{overhead:>8.1%}   {verdict} the {TARGET:.0%} target")


if __name__ == "__main__":
    main()
