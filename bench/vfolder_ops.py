"""Vfolder lifecycle throughput: create+delete operations per second and list latency for
N vfolders, on SQLite and PostgreSQL, against same-run baselines.

    .venv/bin/python bench/vfolder_ops.py [--backends sqlite,postgresql] [--count 1000] [--runs 3]

The app runs in-process (httpx over ASGI: no network, so the figures are the proxy's own
cost). Baselines measured in the same run, on the same disk and database:
- disk: mkdir of the sharded directory + rename into a trash directory, per vfolder;
- db: one INSERT and one UPDATE transaction per vfolder through the same engine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings
from app.db.engine import create_engine
from app.db.migrate import upgrade_to_head
from app.main import create_app

SERVICE_KEY = "bench-service-key-0123456789abcdef0123456789"
HEADERS = {"Authorization": f"Bearer {SERVICE_KEY}"}


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}"
        return
    from tests.support.services import postgres_schema

    with postgres_schema() as url:
        yield url


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def p95_ms(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(len(samples) * 0.95) - 1)] * 1000


async def timed(op: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await op()
    return time.perf_counter() - start


async def one_run(url: str, workdir: Path, count: int) -> dict[str, float]:
    settings = Settings(
        env="dev",
        data_dir=workdir / "data",
        database_url=url,
        service_keys=[SERVICE_KEY],
        trash_purge_interval_seconds=3600,
        log_level="WARNING",
    )
    app = create_app(settings)
    results: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            ids: list[str] = []

            async def create_all() -> None:
                for i in range(count):
                    r = await client.post(
                        "/v1/vfolders",
                        json={"name": f"vf-{i:06d}", "volume": "local", "owner_id": "bench"},
                        headers=HEADERS,
                    )
                    assert r.status_code == 201, r.text
                    ids.append(r.json()["id"])

            results["create ops/s"] = count / await timed(create_all)

            for limit in (100, 1000):
                pages: list[float] = []
                for _ in range(3):
                    cursor: str | None = None
                    while True:
                        params: dict[str, str | int] = {"limit": limit}
                        if cursor:
                            params["cursor"] = cursor
                        start = time.perf_counter()
                        r = await client.get("/v1/vfolders", params=params, headers=HEADERS)
                        pages.append(time.perf_counter() - start)
                        cursor = r.json()["next_cursor"]
                        if cursor is None:
                            break
                results[f"list page limit={limit} median ms"] = median_ms(pages)
                results[f"list page limit={limit} p95 ms"] = p95_ms(pages)

            gets: list[float] = []
            for vfolder_id in ids[:200]:
                start = time.perf_counter()
                await client.get(f"/v1/vfolders/{vfolder_id}", headers=HEADERS)
                gets.append(time.perf_counter() - start)
            results["get median ms"] = median_ms(gets)

            async def delete_all() -> None:
                for vfolder_id in ids:
                    r = await client.delete(f"/v1/vfolders/{vfolder_id}", headers=HEADERS)
                    assert r.status_code == 204, r.text

            results["delete ops/s"] = count / await timed(delete_all)
    return results


def disk_baseline(workdir: Path, count: int) -> float:
    root = workdir / "raw"
    trash = root / ".trash"
    trash.mkdir(parents=True)
    start = time.perf_counter()
    for _ in range(count):
        h = uuid.uuid4().hex
        path = root / h[:2] / h[2:4] / h
        path.mkdir(parents=True)
        path.rename(trash / h)
    return count / (time.perf_counter() - start)


async def db_baseline(url: str, count: int) -> float:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("CREATE TABLE IF NOT EXISTS bench_raw (id VARCHAR(32) PRIMARY KEY, s TEXT)")
            )
        start = time.perf_counter()
        for _ in range(count):
            key = uuid.uuid4().hex
            async with engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO bench_raw (id, s) VALUES (:id, 'ready')"), {"id": key}
                )
            async with engine.begin() as conn:
                await conn.execute(
                    text("UPDATE bench_raw SET s = 'deleted' WHERE id = :id"), {"id": key}
                )
        return count / (time.perf_counter() - start)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE bench_raw"))
        await engine.dispose()


async def measure(url: str, workdir: Path, count: int) -> tuple[float, float, dict[str, float]]:
    engine = create_engine(url)
    await upgrade_to_head(engine)
    await engine.dispose()
    disk = disk_baseline(workdir, count)
    db = await db_baseline(url, count)
    return disk, db, await one_run(url, workdir, count)


def bench_backend(backend: str, count: int, runs: int) -> None:
    per_run: list[dict[str, float]] = []
    disk: list[float] = []
    db: list[float] = []
    for _ in range(runs):
        with (
            tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp,
            database(backend, Path(tmp)) as url,
        ):
            disk_ops, db_ops, results = asyncio.run(measure(url, Path(tmp), count))
            disk.append(disk_ops)
            db.append(db_ops)
            per_run.append(results)

    create_delete = [
        2 / (1 / r["create ops/s"] + 1 / r["delete ops/s"]) for r in per_run
    ]  # harmonic mean: one create plus one delete
    disk_med, db_med = statistics.median(disk), statistics.median(db)
    print(f"\n== {backend}: {count} vfolders, median of {runs} runs")
    print(f"{'metric':<34}{'value':>12}{'baseline':>12}  baseline is")
    print(
        f"{'create+delete ops/s':<34}{statistics.median(create_delete):>12.0f}{db_med:>12.0f}"
        "  INSERT+UPDATE txns/s, same engine"
    )
    print(f"{'':<34}{'':>12}{disk_med:>12.0f}  mkdir+rename/s, same disk")
    for metric in per_run[0]:
        value = statistics.median(r[metric] for r in per_run)
        print(f"{metric:<34}{value:>12.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        try:
            bench_backend(backend.strip(), args.count, args.runs)
        except BaseException as exc:  # pytest.skip/fail from the service probe, or a real error
            print(f"\n== {backend}: not measured: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
