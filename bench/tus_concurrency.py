"""Many tus uploads at once: 64 concurrent uploads of 64 MiB (one curl each, one PATCH each),
against eight parallel ``dd conv=fsync`` writing the same total into the same volume in the
same run. While the uploads run, a cheap authenticated GET (``GET /v1/vfolders/{id}``) is
issued every 20 ms and its latency recorded. Every upload is checked byte for byte.

    .venv/bin/python bench/tus_concurrency.py [--uploads 64] [--each-mib 64] [--runs 3]

Prints, as medians of the runs: the aggregate MiB/s of the uploads and of the dd baseline and
their ratio (target: >= 0.8), the GET's p50/p99 (target: p99 < 100 ms), the server's CPU
seconds per GiB, and its idle and peak RSS (target: peak < 200 MiB).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_server import AUTH, LiveServer, live_server
from tus_upload import MIB, create_upload, curl_patches, finish

DD_PROCESSES = 8
PROBE_INTERVAL = 0.02


def parallel_dd_mib_s(source: Path, directory: Path, total_mib: int) -> float:
    """Eight ``dd conv=fsync`` at once, writing ``total_mib`` between them."""
    each = total_mib // DD_PROCESSES
    source_mib = source.stat().st_size // MIB
    began = time.perf_counter()
    processes = [
        subprocess.Popen(
            [
                "dd",
                f"if={source}",
                f"of={directory / f'dd-{index}.bin'}",
                "bs=1M",
                # The source is smaller: read it again until ``each`` MiB are written.
                f"count={min(each, source_mib)}",
                "conv=fsync",
                "status=none",
            ]
            if each <= source_mib
            else ["sh", "-c", _repeated_dd(source, directory / f"dd-{index}.bin", each, source_mib)]
        )
        for index in range(DD_PROCESSES)
    ]
    for process in processes:
        if process.wait() != 0:
            raise RuntimeError("dd failed")
    elapsed = time.perf_counter() - began
    for index in range(DD_PROCESSES):
        (directory / f"dd-{index}.bin").unlink()
    return each * DD_PROCESSES / elapsed


def _repeated_dd(source: Path, target: Path, mib: int, source_mib: int) -> str:
    repeats = -(-mib // source_mib)
    cat = " ".join([str(source)] * repeats)
    return f"cat {cat} | dd of={target} bs=1M count={mib} iflag=fullblock conv=fsync status=none"


class Probe(threading.Thread):
    """A cheap GET every PROBE_INTERVAL until stopped; its latencies in seconds."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.latencies: list[float] = []
        self.failures = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        with httpx.Client(headers=AUTH, timeout=30) as client:
            while not self._stop_event.is_set():
                began = time.perf_counter()
                try:
                    ok = client.get(self.url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - began)
                self.failures += not ok
                self._stop_event.wait(PROBE_INTERVAL)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def uploads_mib_s(
    server: LiveServer, source: Path, uploads: int, run: int
) -> tuple[float, float, Probe, list[Path]]:
    size = source.stat().st_size
    names = [f"c{run}-{index}.bin" for index in range(uploads)]
    urls = [create_upload(server, size, name) for name in names]
    probe = Probe(server.vfolder_url)
    probe.start()
    cpu = server.cpu_seconds()
    began = time.perf_counter()
    curls = [curl_patches(url, [source]) for url in urls]
    for curl in curls:
        finish(curl, 1)
    elapsed = time.perf_counter() - began
    used = server.cpu_seconds() - cpu
    probe.stop()
    total_mib = uploads * size / MIB
    return (
        total_mib / elapsed,
        used / (total_mib / 1024),
        probe,
        [server.vfolder_root / name for name in names],
    )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=64)
    parser.add_argument("--each-mib", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    total_mib = args.uploads * args.each_mib
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp, live_server(Path(tmp)) as server:
        source = Path(tmp) / "source.bin"
        source.write_bytes(random.randbytes(args.each_mib * MIB))
        expected = sha256(source)
        idle_rss = server.rss_kib() / 1024
        figures: dict[str, list[float]] = {"dd": [], "uploads": [], "cpu": [], "p50": [], "p99": []}
        peak_rss = 0.0
        failures = 0
        for run in range(args.runs):
            os.sync()
            figures["dd"].append(parallel_dd_mib_s(source, server.volume_root, total_mib))
            os.sync()
            server.reset_peak()
            mib_s, cpu, probe, files = uploads_mib_s(server, source, args.uploads, run)
            peak_rss = max(peak_rss, server.peak_rss_kib() / 1024)
            figures["uploads"].append(mib_s)
            figures["cpu"].append(cpu)
            figures["p50"].append(percentile(probe.latencies, 0.5) * 1000)
            figures["p99"].append(percentile(probe.latencies, 0.99) * 1000)
            failures += probe.failures
            for path in files:
                if sha256(path) != expected:
                    raise SystemExit(f"{path.name}: not the bytes sent")
                path.unlink()
            print(
                f"run {run + 1}: "
                + ", ".join(f"{name} {values[-1]:.1f}" for name, values in figures.items())
                + f", GETs {len(probe.latencies)}",
                flush=True,
            )
        medians = {name: statistics.median(values) for name, values in figures.items()}
        print(
            f"\n== {args.uploads} concurrent tus uploads of {args.each_mib} MiB (curl, one PATCH"
            f" each), median of {args.runs} runs; every file checked by sha256"
        )
        print(f"{'8 parallel dd conv=fsync (baseline)':<40}{medians['dd']:>8.0f} MiB/s")
        print(
            f"{'uploads, aggregate':<40}{medians['uploads']:>8.0f} MiB/s"
            f"  = {medians['uploads'] / medians['dd']:.2f}x dd"
        )
        print(f"{'server CPU':<40}{medians['cpu']:>8.2f} s/GiB")
        print(
            f"{'GET /v1/vfolders/{id} meanwhile':<40}p50 {medians['p50']:.1f} ms, "
            f"p99 {medians['p99']:.1f} ms, {failures} failed"
        )
        print(f"{'server RSS':<40}idle {idle_rss:.1f} MiB, peak {peak_rss:.1f} MiB")


if __name__ == "__main__":
    main()
