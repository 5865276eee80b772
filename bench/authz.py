"""Authorization cost: requests/s of an authenticated stat with a cold vs a warm permission
cache, with the in-process cache and with Redis.

    .venv/bin/python bench/authz.py [--requests 2000] [--runs 3]

Cold: every request names a different vfolder, so its metadata and access rules come from
the database. Warm: every request names the same vfolder. A user JWT is verified on every
request in both. Baseline in the same run: `GET /health/live` (no auth, no cache, no DB).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

KEY = "bench-service-key-0123456789abcdef0123456789"
CONCURRENCY = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(workdir: Path, redis_url: str | None) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
    env.update(STORAGE_SERVICE_KEYS=KEY, STORAGE_LOG_LEVEL="WARNING")
    if redis_url:
        env.update(STORAGE_REDIS_URL=redis_url, STORAGE_REDIS_KEY_PREFIX=f"bench-{os.getpid()}:")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait()


async def rate(base: str, urls: list[str], headers: dict[str, str]) -> float:
    queue = list(reversed(urls))

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            response = await client.get(queue.pop(), headers=headers)
            assert response.status_code == 200, response.text

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        return len(urls) / (time.perf_counter() - began)


def measure(base: str, count: int, workdir: Path) -> dict[str, float]:
    service = {"Authorization": f"Bearer {KEY}"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
    token = subprocess.run(
        [sys.executable, "-m", "app.cli", "token", "--user", "bench", "--ttl", "3600"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    user = {"Authorization": f"Bearer {token}"}
    ids = []
    with httpx.Client(base_url=base, headers=service) as http:
        for i in range(count):
            created = http.post(
                "/v1/vfolders",
                json={
                    "name": f"b{i}-{time.monotonic_ns()}",
                    "volume": "local",
                    "owner_id": "bench",
                },
            ).json()
            ids.append(created["id"])
    cold = [f"/v1/vfolders/{vid}/stat" for vid in ids]
    warm = [f"/v1/vfolders/{ids[0]}/stat"] * count
    return {
        "baseline /health/live": asyncio.run(rate(base, ["/health/live"] * count, {})),
        "stat, cold cache": asyncio.run(rate(base, cold, user)),
        "stat, warm cache": asyncio.run(rate(base, warm, user)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    for label, redis_url in (("in-process cache", None), ("Redis", args.redis)):
        results: list[dict[str, float]] = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
                try:
                    with server(Path(tmp), redis_url) as base:
                        results.append(measure(base, args.requests, Path(tmp)))
                except (httpx.HTTPError, AssertionError) as exc:
                    print(f"{label}: not measured: {exc}")
                    break
        if not results:
            continue
        print(
            f"\n== {label}, {args.requests} requests x {CONCURRENCY} concurrent, "
            f"median of {len(results)} runs"
        )
        for metric in results[0]:
            print(f"{metric:<26}{statistics.median(r[metric] for r in results):>10.0f} req/s")


if __name__ == "__main__":
    main()
