"""Vfolder lifecycle cost: create and delete operations per second, list-page and get latency
for N vfolders, on the embedded SQLite and on PostgreSQL, against raw baselines measured in
the same run.

    .venv/bin/python bench/vfolder_ops.py [--backends sqlite,postgresql] [--count 1000] [--runs 3]

The app is built in-process with ``create_app(settings)`` and driven through httpx over ASGI
(no sockets: the figures are the proxy's own cost, one request at a time). Every run starts
from a fresh database (a temporary SQLite file, or a private PostgreSQL role + schema) and a
fresh temporary data directory. Baselines, measured in the same run:

- disk: ``os.mkdir`` of the sharded directory ``<hex[0:2]>/<hex[2:4]>/<hex>`` then
  ``os.rename`` of it into a ``.trash`` directory, next to the app's volume;
- db, through the app's own engine (the lifespan's, same pool and pragmas): one INSERT
  transaction, one DELETE transaction per row of a scratch table; keyset SELECT of one page
  and SELECT by primary key on the app's ``vfolders`` table.

Figures are medians over the runs. ``ratio`` is the cost relative to the baseline: baseline
ops/s divided by the app's ops/s, or the app's ms divided by the baseline ms (1.0 = as cheap as
the raw operations, 5.0 = five times their cost).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.core.runtime import Runtime
from app.db.engine import create_engine
from app.db.migrate import upgrade_to_head
from app.main import create_app

SERVICE_KEY = secrets.token_urlsafe(32)
JWT_SECRET = secrets.token_urlsafe(32)
HEADERS = {"Authorization": f"Bearer {SERVICE_KEY}"}
LIST_LIMITS = (100, 1000)
MIN_LIST_PASSES, MIN_PAGE_SAMPLES = 5, 20  # full listings per limit and run
BACKENDS = ("sqlite", "postgresql")

# The same PostgreSQL the tests use (tests/support/services.py).
PG_HOST = os.environ.get("STORAGE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("STORAGE_TEST_PG_PORT", "5432"))
PG_DATABASE = os.environ.get("STORAGE_TEST_PG_DATABASE", "test")
PG_ADMIN_USER = os.environ.get("STORAGE_TEST_PG_USER", "postgres")


# --------------------------------------------------------------------------- databases


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be benchmarked, or None when it can."""
    where = f"{PG_ADMIN_USER}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}"
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1.0):
            pass
    except OSError as exc:
        return f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} ({exc})"
    try:
        asyncio.run(_pg_admin(["SELECT 1"]))
    except (OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL at {where} refused the admin connection ({exc})"
    return None


async def _pg_admin(statements: Sequence[str]) -> None:
    conn = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_ADMIN_USER, database=PG_DATABASE
    )
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def database(backend: str, workdir: Path) -> AsyncIterator[str]:
    """A fresh, migrated database; yields its SQLAlchemy URL."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}"
        await migrate(url)
        yield url
        return
    # A private role and schema of the same name: "$user" leads the search_path, so the
    # migrations and the app land there and nothing else in the database is touched.
    name = f"sp_bench_{secrets.token_hex(6)}"
    await _pg_admin([f"CREATE ROLE {name} LOGIN", f"CREATE SCHEMA {name} AUTHORIZATION {name}"])
    try:
        url = f"postgresql+asyncpg://{name}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}"
        await migrate(url)
        yield url
    finally:
        await _pg_admin([f"DROP SCHEMA {name} CASCADE", f"DROP ROLE {name}"])


async def migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- measuring


def ms_median(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1000


def ms_p95(samples: Sequence[float]) -> float:
    if len(samples) < 2:
        return samples[0] * 1000
    return statistics.quantiles(samples, n=20, method="inclusive")[18] * 1000


def list_passes(limit: int, count: int) -> int:
    """Full listings per limit: at least MIN_LIST_PASSES, and MIN_PAGE_SAMPLES pages."""
    pages_per_pass = -(-count // limit)
    return max(MIN_LIST_PASSES, -(-MIN_PAGE_SAMPLES // pages_per_pass))


@dataclass
class RunResult:
    """One run's figures: the app's, and the baselines'."""

    app: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)


def disk_baseline(root: Path, count: int, result: RunResult) -> None:
    """mkdir of ``count`` sharded directories, then a rename of each into ``.trash``."""
    trash = root / ".trash"
    trash.mkdir(parents=True)
    hexes = [uuid.uuid4().hex for _ in range(count)]
    start = time.perf_counter()
    for h in hexes:
        for shard in (root / h[:2], root / h[:2] / h[2:4]):
            if not shard.is_dir():
                os.mkdir(shard)  # noqa: PTH102 - the raw syscall is the point
        os.mkdir(root / h[:2] / h[2:4] / h)  # noqa: PTH102
    mkdir_s = time.perf_counter() - start
    start = time.perf_counter()
    for h in hexes:
        os.rename(root / h[:2] / h[2:4] / h, trash / h)  # noqa: PTH104
    rename_s = time.perf_counter() - start
    result.baseline["mkdir s"] = mkdir_s
    result.baseline["rename s"] = rename_s


async def db_write_baseline(engine: AsyncEngine, count: int, result: RunResult) -> None:
    """One INSERT transaction per row, then one DELETE transaction per row, on a scratch table
    shaped like a vfolder's identity."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE bench_raw (id VARCHAR(36) PRIMARY KEY, name VARCHAR(255) NOT NULL,"
                " status VARCHAR(16) NOT NULL)"
            )
        )
    keys = [str(uuid.uuid4()) for _ in range(count)]
    insert = text("INSERT INTO bench_raw (id, name, status) VALUES (:id, :name, 'ready')")
    delete = text("DELETE FROM bench_raw WHERE id = :id")
    try:
        start = time.perf_counter()
        for i, key in enumerate(keys):
            async with engine.begin() as conn:
                await conn.execute(insert, {"id": key, "name": f"vf-{i:06d}"})
        insert_s = time.perf_counter() - start
        start = time.perf_counter()
        for key in keys:
            async with engine.begin() as conn:
                await conn.execute(delete, {"id": key})
        delete_s = time.perf_counter() - start
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE bench_raw"))
    result.baseline["insert s"] = insert_s
    result.baseline["delete s"] = delete_s


async def db_read_baseline(
    engine: AsyncEngine, ids: Sequence[uuid.UUID], result: RunResult
) -> None:
    """Keyset pages and primary-key lookups on the app's own table: plain rows, no ORM, no JSON."""
    first = text("SELECT * FROM vfolders WHERE status = 'ready' ORDER BY name, id LIMIT :limit")
    after = text(
        "SELECT * FROM vfolders WHERE status = 'ready' AND (name, id) > (:name, :id)"
        " ORDER BY name, id LIMIT :limit"
    ).bindparams(bindparam("id", type_=Uuid()))
    by_id = text("SELECT * FROM vfolders WHERE id = :id").bindparams(bindparam("id", type_=Uuid()))
    async with engine.connect() as conn:
        for limit in LIST_LIMITS:
            pages: list[float] = []
            for _ in range(list_passes(limit, len(ids))):
                # limit + 1 rows, as the app fetches, to know whether another page follows.
                params: dict[str, Any] = {"limit": limit + 1}
                statement = first
                seen = 0
                while True:
                    start = time.perf_counter()
                    fetched = (await conn.execute(statement, params)).mappings().all()
                    pages.append(time.perf_counter() - start)
                    rows = fetched[:limit]
                    seen += len(rows)
                    if len(fetched) <= limit:
                        break
                    last = rows[-1]
                    # Same key type as the app: a UUID, whatever the driver returns.
                    last_id = last["id"]
                    if not isinstance(last_id, uuid.UUID):
                        last_id = uuid.UUID(str(last_id))
                    statement = after
                    params = {"limit": limit + 1, "name": last["name"], "id": last_id}
                assert seen == len(ids), (seen, len(ids))
            result.baseline[f"list limit={limit} page median ms"] = ms_median(pages)
            result.baseline[f"list limit={limit} page p95 ms"] = ms_p95(pages)
        gets: list[float] = []
        for vfolder_id in ids:
            start = time.perf_counter()
            row = (await conn.execute(by_id, {"id": vfolder_id})).first()
            gets.append(time.perf_counter() - start)
            assert row is not None
        result.baseline["get median ms"] = ms_median(gets)
        result.baseline["get p95 ms"] = ms_p95(gets)
        await conn.rollback()


async def app_run(url: str, workdir: Path, count: int) -> RunResult:
    result = RunResult()
    data_dir = workdir / "data"
    settings = Settings(
        _env_file=None,
        env="dev",
        data_dir=data_dir,
        database_url=url,
        redis_url=None,
        service_keys=[SERVICE_KEY],
        jwt_secret=JWT_SECRET,
        trash_purge_interval_seconds=3600,  # no background purge during the measurement
        log_level="WARNING",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        # Baselines on the same disk (beside the volume) and through the same engine.
        disk_baseline(data_dir / "raw-baseline", count, result)
        await db_write_baseline(runtime.engine, count, result)

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=HEADERS
        ) as client:
            ids: list[uuid.UUID] = []
            start = time.perf_counter()
            for i in range(count):
                r = await client.post(
                    "/v1/vfolders",
                    json={
                        "name": f"vf-{i:06d}",
                        "volume": "local",
                        "owner_type": "user",
                        "owner_id": "bench",
                    },
                )
                assert r.status_code == 201, r.text
                ids.append(uuid.UUID(r.json()["id"]))
            result.app["create s"] = time.perf_counter() - start

            for limit in LIST_LIMITS:
                pages: list[float] = []
                for _ in range(list_passes(limit, count)):
                    cursor: str | None = None
                    seen = 0
                    while True:
                        params: dict[str, str | int] = {"limit": limit}
                        if cursor is not None:
                            params["cursor"] = cursor
                        start = time.perf_counter()
                        r = await client.get("/v1/vfolders", params=params)
                        pages.append(time.perf_counter() - start)
                        assert r.status_code == 200, r.text
                        body = r.json()
                        seen += len(body["items"])
                        cursor = body["next_cursor"]
                        if cursor is None:
                            break
                    assert seen == count, (seen, count)
                result.app[f"list limit={limit} page median ms"] = ms_median(pages)
                result.app[f"list limit={limit} page p95 ms"] = ms_p95(pages)

            await db_read_baseline(runtime.engine, ids, result)

            gets: list[float] = []
            for vfolder_id in ids:
                start = time.perf_counter()
                r = await client.get(f"/v1/vfolders/{vfolder_id}")
                gets.append(time.perf_counter() - start)
                assert r.status_code == 200, r.text
            result.app["get median ms"] = ms_median(gets)
            result.app["get p95 ms"] = ms_p95(gets)

            start = time.perf_counter()
            for vfolder_id in ids:
                r = await client.delete(f"/v1/vfolders/{vfolder_id}")
                assert r.status_code == 204, r.text
            result.app["delete s"] = time.perf_counter() - start
    return result


async def one_run(backend: str, count: int) -> RunResult:
    with tempfile.TemporaryDirectory(prefix="sp-bench-") as tmp:
        workdir = Path(tmp)
        async with database(backend, workdir) as url:
            return await app_run(url, workdir, count)


# --------------------------------------------------------------------------- reporting


@dataclass(frozen=True)
class Row:
    backend: str
    metric: str
    value: float
    baseline: float | None
    ratio: float | None
    baseline_is: str


def rows_for(backend: str, count: int, runs: Sequence[RunResult]) -> list[Row]:
    def med(pick: Callable[[RunResult], float]) -> float:
        return statistics.median(pick(r) for r in runs)

    def ops(metric: str, app_s: Sequence[str], base_s: Sequence[str], baseline_is: str) -> Row:
        value = med(lambda r: count / sum(r.app[k] for k in app_s))
        baseline = med(lambda r: count / sum(r.baseline[k] for k in base_s))
        return Row(backend, metric, value, baseline, baseline / value, baseline_is)

    rows = [
        ops("create ops/s", ["create s"], ["insert s", "mkdir s"], "INSERT txn + mkdir"),
        ops("delete ops/s", ["delete s"], ["delete s", "rename s"], "DELETE txn + rename"),
        ops(
            "create+delete pairs/s",
            ["create s", "delete s"],
            ["insert s", "mkdir s", "delete s", "rename s"],
            "INSERT+DELETE txns + mkdir+rename",
        ),
    ]
    for metric in [k for k in runs[0].app if k.endswith(" ms")]:
        value = statistics.median(r.app[metric] for r in runs)
        baseline = statistics.median(r.baseline[metric] for r in runs)
        what = "keyset SELECT, same engine" if metric.startswith("list") else "SELECT by id"
        rows.append(Row(backend, metric, value, baseline, value / baseline, what))
    rows.extend(
        [
            Row(
                backend,
                "raw mkdir+rename pairs/s",
                med(lambda r: count / (r.baseline["mkdir s"] + r.baseline["rename s"])),
                None,
                None,
                "baseline alone: disk",
            ),
            Row(
                backend,
                "raw INSERT+DELETE pairs/s",
                med(lambda r: count / (r.baseline["insert s"] + r.baseline["delete s"])),
                None,
                None,
                "baseline alone: db, same engine",
            ),
        ]
    )
    return rows


def print_table(rows: Sequence[Row]) -> None:
    header = f"{'backend':<11}{'metric':<32}{'value':>10}{'baseline':>10}{'ratio':>8}  baseline is"
    print(header)
    print("-" * (len(header) + 24))
    for row in rows:
        baseline = "" if row.baseline is None else f"{row.baseline:10.2f}"
        ratio = "" if row.ratio is None else f"{row.ratio:8.2f}"
        print(
            f"{row.backend:<11}{row.metric:<32}{row.value:>10.2f}{baseline:>10}{ratio:>8}"
            f"  {row.baseline_is}"
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated: sqlite, postgresql (default: both)",
    )
    parser.add_argument("--count", type=int, default=1000, help="vfolders per run (default 1000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per backend (default 3)")
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    if args.count < 1 or args.runs < 1:
        parser.error("--count and --runs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    backends: list[str] = args.backends
    if "postgresql" in backends and (problem := postgres_problem()) is not None:
        print(f"{problem}: benchmarking without it")
        backends = [b for b in backends if b != "postgresql"]
    rows: list[Row] = []
    for backend in backends:
        results: list[RunResult] = []
        for run in range(1, args.runs + 1):
            print(f"{backend}: run {run}/{args.runs} ({args.count} vfolders)...", flush=True)
            results.append(asyncio.run(one_run(backend, args.count)))
        rows.extend(rows_for(backend, args.count, results))
    print(f"\nvfolder ops: {args.count} vfolders, median of {args.runs} runs")
    print("ratio = cost relative to the baseline (1.0 = as cheap as the raw operations)\n")
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
