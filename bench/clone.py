"""Clone speed: a vfolder of many files cloned through the API (a task) against `cp -a` of the
same tree into the same volume followed by `sync` (the clone is durable when it is declared
ready), measured in the same run. On this machine's ext4 both copy the bytes (no reflinks).

    .venv/bin/python bench/clone.py [--files 10000] [--size-mib 2048] [--runs 3]

Target: the clone within 1.3x of `cp -a`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_server import AUTH, LiveServer, live_server

HEADERS = {**AUTH, "X-Act-As-User": "bench"}


def make_tree(root: Path, files: int, total_bytes: int) -> None:
    size = max(1, total_bytes // files)
    block = os.urandom(size)
    for n in range(files):
        directory = root / f"d{n // 100:04}"
        directory.mkdir(exist_ok=True)
        (directory / f"f{n:05}.bin").write_bytes(block)
    subprocess.run(["sync"], check=True)


def timed_clone(server: LiveServer, source_id: str, name: str) -> float:
    began = time.perf_counter()
    started = httpx.post(
        f"{server.vfolder_url.rsplit('/', 1)[0]}/{source_id}/clone",
        json={"name": name, "volume": "local"},
        headers=HEADERS,
    )
    assert started.status_code == 202, started.text
    location = server.base_url + started.headers["location"]
    while True:
        task = httpx.get(location, headers=HEADERS).json()
        if task["state"] in {"succeeded", "failed"}:
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - began
    assert task["state"] == "succeeded", task
    return elapsed


def timed_cp(source: Path, target: Path) -> float:
    began = time.perf_counter()
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    subprocess.run(["sync"], check=True)
    elapsed = time.perf_counter() - began
    shutil.rmtree(target)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp, live_server(Path(tmp)) as server:
        source_id = server.vfolder_url.rsplit("/", 1)[1]
        make_tree(server.vfolder_root, args.files, args.size_mib * 1024 * 1024)
        httpx.post(f"{server.vfolder_url}/reconcile", headers=HEADERS, timeout=600)
        clones, copies = [], []
        for run in range(args.runs):
            copies.append(timed_cp(server.vfolder_root, server.volume_root / f"cp-{run}"))
            clones.append(timed_clone(server, source_id, f"clone-{run}"))
            print(f"run {run + 1}: cp -a + sync {copies[-1]:.2f} s, clone {clones[-1]:.2f} s")
        cp_med, clone_med = statistics.median(copies), statistics.median(clones)
        print(f"\n== clone of {args.files} files / {args.size_mib} MiB, median of {args.runs}")
        print(f"{'cp -a + sync (baseline)':<28}{cp_med:>8.2f} s")
        print(f"{'clone through the API':<28}{clone_med:>8.2f} s  = {clone_med / cp_med:.2f}x")


if __name__ == "__main__":
    main()
