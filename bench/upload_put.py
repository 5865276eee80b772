"""Upload speed: a 1 GiB `PUT` through the proxy vs `dd ... conv=fsync` into the same volume,
in the same run. Both read the same source file from the page cache; both end with fsync.

    .venv/bin/python bench/upload_put.py [--size-mib 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_server import AUTH, live_server


def dd_mib_s(source: Path, target: Path, size_mib: int) -> float:
    began = time.perf_counter()
    subprocess.run(
        ["dd", f"if={source}", f"of={target}", "bs=1M", "conv=fsync", "status=none"], check=True
    )
    elapsed = time.perf_counter() - began
    target.unlink()
    return size_mib / elapsed


def put_mib_s(url: str, source: Path, size_mib: int) -> float:
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", str(source), url]
    for name, value in AUTH.items():
        args[1:1] = ["-H", f"{name}: {value}"]
    began = time.perf_counter()
    status = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - began
    assert status in ("200", "201"), status
    return size_mib / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp, live_server(Path(tmp)) as server:
        source = Path(tmp) / "source.bin"
        with source.open("wb") as out:
            block = random.randbytes(1 << 20)
            for _ in range(args.size_mib):
                out.write(block)
        dd, put = [], []
        server.reset_peak()
        rss_before = server.rss_kib()
        for i in range(args.runs):  # interleaved: both see the same disk state
            dd.append(dd_mib_s(source, server.volume_root / f"dd-{i}.bin", args.size_mib))
            put.append(put_mib_s(f"{server.vfolder_url}/files/put-{i}.bin", source, args.size_mib))
        growth = (server.peak_rss_kib() - rss_before) / 1024
        ratio = statistics.median(put) / statistics.median(dd)
        print(f"\n== {args.size_mib} MiB upload, median of {args.runs} runs")
        print(f"{'dd conv=fsync (baseline)':<28}{statistics.median(dd):>8.0f} MiB/s")
        print(f"{'proxy PUT':<28}{statistics.median(put):>8.0f} MiB/s  = {ratio:.0%} of dd")
        print(f"{'proxy peak RSS growth':<28}{growth:>8.1f} MiB")


if __name__ == "__main__":
    main()
