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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_server import KEY, live_server

CONCURRENCY = 8


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
                    with live_server(Path(tmp), redis_url=redis_url) as server:
                        results.append(measure(server.base_url, args.requests, Path(tmp)))
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
