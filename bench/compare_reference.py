"""Ours against the reference Backend.AI storage proxy 23.9.10, the same workloads in one run,
over the protocol both speak: the Manager-facing API (``/folder/...``, ``/volumes``) and the
client-facing ``/upload`` (tus) and ``/download``.

    .venv/bin/python bench/compare_reference.py [--runs 3] [--seconds 5] [--transfer-mib 512]
        [--ours sqlite,postgresql] [--no-reference]

Ours runs on the embedded SQLite and on PostgreSQL + Redis (each a fresh database), both
started here; the reference must already run on loopback (Manager API on 16022, client API on
16021, its pid file under ``REF_DIR``; one worker, WARNING logs). Every
server is up for the whole run and the order turns each run, so that no server always goes
first on a cold page cache.

- Request workloads are driven by ``wrk`` (one C thread, Lua scripts that make every request
  unique), so the client is not the limit: vfolder create + delete one pair at a time,
  ``mkdir`` with 16 connections, ``GET /volumes`` (the cheapest authenticated call) with 32,
  and a bare FastAPI hello on our server stack with 32 as the baseline of the last.
- Transfers use curl: an upload in 64 MiB PATCHes and a download of the same file; listing is
  one ``/folder/file/list`` of a directory of 10,000 files (the reference returns at most
  1,000 of them: the figure is per entry returned).

Each figure is the median of the runs, with the **server CPU per operation**: user + system
time of the server's processes (ours: one; the reference: master + worker) over the operations
done. That figure is steady where wall time is not on 2 cores. The CPU of PostgreSQL, Redis
and etcd is not counted on either side. A row says "client-bound" when the server used well
under one core while it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backendai_transfer import (
    AUTH_HEADER,
    Figure,
    Proxy,
    backendai_download,
    backendai_upload,
    reference_proxy,
)
from live_server import free_port, live_server
from request_rate import Rate, hello_server, median_rate, run_wrk
from tus_upload import MIB, dd_mib_s, split
from vfolder_ops import database, postgres_problem

MANAGER_KEY = "bench-manager-secret-0123456789abcdef012345"
REDIS_URL = os.environ.get("STORAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LISTED_FILES = 10_000

# wrk scripts. Every request is unique (a counter, after a prefix unique to the run), and
# `wrk.format(method, path, nil, body)` sends the global headers set above it.
HEADERS_LUA = """
wrk.headers["{auth_header}"] = "{secret}"
wrk.headers["Content-Type"] = "application/json"
"""
CREATE_DELETE_LUA = """
local n = 0
local vfid
request = function()
  n = n + 1
  if n % 2 == 1 then
    vfid = string.format("user:{scope}/{prefix}%08x", (n + 1) / 2)
    return wrk.format("POST", "/folder/create", nil,
      '{{"volume":"local","vfid":"' .. vfid .. '","options":{{}}}}')
  end
  return wrk.format("POST", "/folder/delete", nil, '{{"volume":"local","vfid":"' .. vfid .. '"}}')
end
"""
MKDIR_LUA = """
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/folder/file/mkdir", nil,
    '{{"volume":"local","vfid":"{vfid}","relpath":"{prefix}/' .. n ..
    '","parents":true,"exist_ok":true}}')
end
"""


@dataclass
class Workload:
    name: str
    unit: str
    ops_per_request: float  # a create + delete pair is two requests
    figures: dict[str, list[Rate]] = field(default_factory=dict)

    def add(self, target: str, rate: Rate) -> None:
        self.figures.setdefault(target, []).append(rate)


def lua_script(workdir: Path, name: str, body: str, proxy: Proxy, **values: str) -> Path:
    script = workdir / f"{name}-{secrets.token_hex(4)}.lua"
    headers = HEADERS_LUA.format(auth_header=AUTH_HEADER, secret=proxy.secret)
    script.write_text(headers + body.format(**values))
    return script


def wrk_rate(proxy: Proxy, path: str, script: Path, seconds: int, connections: int) -> Rate:
    return run_wrk(
        proxy.manager_url + path,
        cpu=proxy.cpu_seconds,
        seconds=seconds,
        connections=connections,
        script=script,
    )


def request_workloads(
    proxy: Proxy, workdir: Path, seconds: int, run: int, workloads: dict[str, Workload]
) -> None:
    prefix = secrets.token_hex(12)  # 24 hex digits; the counter adds 8
    scope = str(uuid.uuid4())
    pairs = lua_script(
        workdir, "create-delete", CREATE_DELETE_LUA, proxy, scope=scope, prefix=prefix
    )
    workloads["create-delete"].add(proxy.name, wrk_rate(proxy, "/", pairs, seconds, 1))
    mkdir = lua_script(workdir, "mkdir", MKDIR_LUA, proxy, vfid=proxy.vfid, prefix=f"m{run}")
    workloads["mkdir"].add(proxy.name, wrk_rate(proxy, "/", mkdir, seconds, 16))
    volumes = lua_script(workdir, "volumes", "", proxy)
    workloads["volumes"].add(proxy.name, wrk_rate(proxy, "/volumes", volumes, seconds, 32))


def folder_path(proxy: Proxy) -> Path:
    reply = httpx.request(
        "GET",
        proxy.manager_url + "/folder/mount",
        json={"volume": "local", "vfid": proxy.vfid},
        headers={AUTH_HEADER: proxy.secret},
    )
    reply.raise_for_status()
    return Path(reply.json()["path"])


def fill_listing(proxy: Proxy) -> None:
    directory = folder_path(proxy) / "listed"
    directory.mkdir()
    for index in range(LISTED_FILES):
        (directory / f"f{index:05}").write_bytes(b"x")


def list_seconds(proxy: Proxy) -> tuple[float, int, float]:
    """Wall seconds, entries returned and server CPU seconds of one listing."""
    cpu = proxy.cpu_seconds()
    began = time.perf_counter()
    reply = proxy.call(
        "/folder/file/list", {"volume": "local", "vfid": proxy.vfid, "relpath": "listed"}
    )
    elapsed = time.perf_counter() - began
    return elapsed, len(reply.json()["items"]), proxy.cpu_seconds() - cpu


# Per transfer (upload, download): each target's figures.
Transfers = dict[str, dict[str, Figure]]


def transfer(proxy: Proxy, parts: list[Path], size_mib: int, run: int, figures: Transfers) -> None:
    name = f"transfer-{run}.bin"
    upload = figures["upload"].setdefault(proxy.name, Figure([], []))
    upload.add(proxy, size_mib, partial(backendai_upload, proxy, parts, name))
    download = figures["download"].setdefault(proxy.name, Figure([], []))
    download.add(proxy, size_mib, partial(backendai_download, proxy, name))
    (folder_path(proxy) / name).unlink()


@contextmanager
def our_server(backend: str, workdir: Path) -> Iterator[Proxy]:
    manager_port = free_port()
    env = {
        "STORAGE_MANAGER_API_SECRET": MANAGER_KEY,
        "STORAGE_MANAGER_API_PORT": str(manager_port),
        "STORAGE_MANAGER_CLIENT_TOKEN_SECRET": "bench-client-token-0123456789abcdef0123456",
    }
    workdir.mkdir()
    with ExitStack() as stack:
        if backend == "postgresql":
            url = stack.enter_context(_sync(database("postgresql", workdir)))
            server = stack.enter_context(
                live_server(workdir, database_url=url, redis_url=REDIS_URL, extra_env=env)
            )
        else:
            server = stack.enter_context(live_server(workdir, extra_env=env))
        label = "ours, SQLite" if backend == "sqlite" else "ours, PostgreSQL + Redis"
        yield Proxy(
            name=label,
            manager_url=f"http://127.0.0.1:{manager_port}",
            client_url=server.base_url,
            secret=MANAGER_KEY,
            pids=lambda: [server.pid],
        )


@contextmanager
def _sync(manager: object) -> Iterator[str]:
    """An async context manager (the bench database) entered from synchronous code."""
    loop = asyncio.new_event_loop()
    try:
        value = loop.run_until_complete(manager.__aenter__())  # type: ignore[attr-defined]
        try:
            yield value
        finally:
            loop.run_until_complete(manager.__aexit__(None, None, None))  # type: ignore[attr-defined]
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="per wrk workload")
    parser.add_argument("--transfer-mib", type=int, default=512, help="0 skips the transfers")
    parser.add_argument("--ours", default="sqlite,postgresql")
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    backends = [b for b in args.ours.split(",") if b]
    if "postgresql" in backends and (problem := postgres_problem()):
        sys.exit(problem)

    workloads = {
        "create-delete": Workload("vfolder create + delete, sequential", "pairs/s", 2),
        "mkdir": Workload("mkdir, 16 connections", "ops/s", 1),
        "volumes": Workload("GET /volumes, 32 connections", "req/s", 1),
    }
    hello: list[Rate] = []
    transfers: Transfers = {"upload": {}, "download": {}}
    listing: dict[str, list[tuple[float, int, float]]] = {}
    dd: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-compare-", dir=Path.cwd()) as tmp,
        ExitStack() as stack,
    ):
        workdir = Path(tmp)
        proxies = [stack.enter_context(our_server(b, workdir / b)) for b in backends]
        if not args.no_reference:
            proxies.append(reference_proxy())
        for proxy in proxies:
            proxy.create_folder()
            fill_listing(proxy)
        parts: list[Path] = []
        if args.transfer_mib:
            source = workdir / "source.bin"
            with source.open("wb") as out:
                block = random.randbytes(MIB)
                for _ in range(args.transfer_mib):
                    out.write(block)
            parts = split(source, 64 * MIB)
        with hello_server(workdir) as (hello_url, hello_pid):
            run_wrk(hello_url, pid=hello_pid, seconds=1, connections=32, script=None)
            for _ in range(args.runs):
                hello.append(
                    run_wrk(
                        hello_url, pid=hello_pid, seconds=args.seconds, connections=32, script=None
                    )
                )
        for run in range(args.runs):
            shift = run % len(proxies)
            for proxy in proxies[shift:] + proxies[:shift]:
                request_workloads(proxy, workdir, args.seconds, run, workloads)
                listing.setdefault(proxy.name, []).append(list_seconds(proxy))
                if parts:
                    transfer(proxy, parts, args.transfer_mib, run, transfers)
            if parts:
                os.sync()
                dd.append(
                    dd_mib_s(
                        parts[0].with_name("source.bin"), workdir / "dd.bin", args.transfer_mib
                    )
                )
            print(f"run {run + 1} of {args.runs} done", flush=True)
        report(args, [p.name for p in proxies], workloads, hello, transfers, listing, dd)


def report(
    args: argparse.Namespace,
    names: list[str],
    workloads: dict[str, Workload],
    hello: list[Rate],
    transfers: Transfers,
    listing: dict[str, list[tuple[float, int, float]]],
    dd: list[float],
) -> None:
    reference = next((n for n in names if n.startswith("reference")), None)
    hello_rate = median_rate(hello)
    print(f"\n== medians of {args.runs} runs, wrk {args.seconds} s per workload")
    print(
        f"{'workload':38s} {'server':28s} {'rate':>14s} {'÷ ref':>6s} {'CPU/op':>10s} {'cores':>6s}"
    )
    print(
        f"{'bare FastAPI hello, 32 connections':38s} {'(baseline)':28s} "
        f"{hello_rate.requests_per_second:>8,.0f} req/s {'':>6s} "
        f"{hello_rate.cpu_ms_per_request:7.3f} ms {hello_rate.server_cores:6.2f}"
    )
    for workload in workloads.values():
        medians = {n: median_rate(r) for n, r in workload.figures.items()}
        for name in names:
            rate = medians[name]
            per_op = rate.requests_per_second / workload.ops_per_request
            cpu = rate.cpu_ms_per_request * workload.ops_per_request
            ratio = ""
            if reference:
                ratio = f"{rate.requests_per_second / medians[reference].requests_per_second:6.2f}"
            bound = "  client-bound" if rate.server_cores < 0.8 else ""
            extra = ""
            if workload.name.startswith("GET"):
                extra = f"  {rate.requests_per_second / hello_rate.requests_per_second:.2f}x hello"
            print(
                f"{workload.name:38s} {name:28s} {per_op:>8,.0f} {workload.unit:5s} {ratio:>6s} "
                f"{cpu:7.3f} ms {rate.server_cores:6.2f}{bound}{extra}"
            )
    for name in names:
        seconds = statistics.median(s for s, _, _ in listing[name])
        entries = statistics.median(e for _, e, _ in listing[name])
        cpu = statistics.median(c for _, _, c in listing[name])
        print(
            f"{'list a directory of 10,000 files':38s} {name:28s} {seconds:8.3f} s     "
            f"{'':6s} {cpu * 1000:7.1f} ms  ({entries:,.0f} entries, "
            f"{seconds / entries * 1e6:.1f} µs per entry)"
        )
    if dd:
        print(f"{'dd conv=fsync (baseline)':38s} {'':28s} {statistics.median(dd):>8,.0f} MiB/s")
        titles = {
            "upload": f"upload {args.transfer_mib} MiB, 64 MiB PATCHes",
            "download": f"download {args.transfer_mib} MiB",
        }
        for kind, title in titles.items():
            figures = transfers[kind]
            ref = statistics.median(figures[reference].mib_s) if reference else None
            for name in names:
                mib_s = statistics.median(figures[name].mib_s)
                ratio = f"{mib_s / ref:6.2f}" if ref else ""
                print(
                    f"{title:38s} {name:28s} {mib_s:>8,.0f} MiB/s {ratio:>6s} "
                    f"{statistics.median(figures[name].cpu_s_per_gib):7.2f} s/GiB"
                )


if __name__ == "__main__":
    main()
