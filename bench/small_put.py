"""Small-file writes: ``PUT`` of 64 KiB files by 16 clients at once (``wrk``, every request a
new path), with a quota on the vfolder and on its owner so that every write is checked,
against the bare file work on the same disk in the same run: 16 threads each writing a file
the way the proxy stores one (write to a staging file, fsync, rename into place, fsync of the
directory).

    .venv/bin/python bench/small_put.py [--seconds 5] [--runs 3] [--clients 16] [--size-kib 64]

Prints files/s (median of the runs), the ratio to the baseline, and the server's CPU per file.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_server import AUTH, KEY, LiveServer, live_server
from request_rate import Rate, median_rate, run_wrk

PUT_LUA = """
wrk.method = "PUT"
wrk.headers["Authorization"] = "Bearer {key}"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep("x", {size})
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "{prefix}-" .. n .. ".bin")
end
"""


def set_quotas(server: LiveServer) -> None:
    """Limits far above what the run writes: every write is checked, none refused."""
    vfolder_id = server.vfolder_url.rsplit("/", 1)[1]
    for scope_type, scope_id in (("vfolder", vfolder_id), ("user", "bench")):
        reply = httpx.put(
            f"{server.base_url}/v1/quotas/{scope_type}/{scope_id}",
            params={"volume": "local"},
            json={"limit_bytes": 1 << 50, "limit_files": 1 << 40},
            headers=AUTH,
        )
        reply.raise_for_status()


def bare_files_per_second(directory: Path, threads: int, size: int, seconds: float) -> float:
    """What the proxy does to store a file, without the proxy: staging write, fsync, rename,
    directory fsync; ``threads`` at once."""
    body = os.urandom(size)
    done = [0] * threads
    deadline = time.monotonic() + seconds

    def writer(index: int) -> None:
        staging = directory / f".staging-{index}"
        while time.monotonic() < deadline:
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(staging, directory / f"bare-{index}-{done[index]}.bin")  # noqa: PTH104
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            done[index] += 1

    began = time.monotonic()
    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - began
    for path in directory.glob("bare-*"):
        path.unlink()
    return sum(done) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--size-kib", type=int, default=64)
    args = parser.parse_args()
    size = args.size_kib * 1024
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp, live_server(Path(tmp)) as server:
        set_quotas(server)
        bare_dir = server.volume_root / "bare"
        bare_dir.mkdir()
        bare: list[float] = []
        ours: list[Rate] = []
        for run in range(args.runs):
            bare.append(bare_files_per_second(bare_dir, args.clients, size, args.seconds))
            script = Path(tmp) / f"put-{run}.lua"
            prefix = f"{server.vfolder_url.removeprefix(server.base_url)}/files/r{run}-"
            script.write_text(
                PUT_LUA.format(key=KEY, size=size, prefix=prefix + secrets.token_hex(4))
            )
            ours.append(
                run_wrk(
                    server.base_url,
                    pid=server.pid,
                    seconds=args.seconds,
                    connections=args.clients,
                    script=script,
                )
            )
            print(
                f"run {run + 1}: bare {bare[-1]:.0f} files/s, "
                f"PUT {ours[-1].requests_per_second:.0f} files/s",
                flush=True,
            )
        rate = median_rate(ours)
        put, cpu, cores = rate.requests_per_second, rate.cpu_ms_per_request, rate.server_cores
        baseline = statistics.median(bare)
        print(
            f"\n== PUT of {args.size_kib} KiB files, {args.clients} clients, quotas on, "
            f"median of {args.runs} runs of {args.seconds} s"
        )
        print(f"{'bare write+fsync+rename+dir fsync':<36}{baseline:>8.0f} files/s")
        print(
            f"{'PUT through the proxy':<36}{put:>8.0f} files/s  = {put / baseline:.2f}x bare, "
            f"server CPU {cpu:.2f} ms per file, {cores:.2f} cores"
        )


if __name__ == "__main__":
    main()
