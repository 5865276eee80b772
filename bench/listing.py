"""Directory listing through the API (all pages, and NDJSON) vs `ls -la` on the same
directory: seconds and the server's peak RSS growth.

    .venv/bin/python bench/listing.py [--sizes 10000,100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_server import AUTH, LiveServer, live_server


def make_entries(directory: Path, count: int) -> None:
    directory.mkdir()
    for i in range(count):
        (directory / f"file-{i:07d}-with-a-realistic-name.dat").write_bytes(b"")


def time_ls(directory: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["ls", "-la", str(directory)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def time_pages(server: LiveServer, path: str, count: int) -> float:
    start = time.perf_counter()
    seen = 0
    cursor = None
    with httpx.Client(headers=AUTH, timeout=600) as http:
        while True:
            params: dict[str, str | int] = {"path": path, "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = http.get(f"{server.vfolder_url}/list", params=params).json()
            seen += len(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == count, (seen, count)
    return time.perf_counter() - start


def time_ndjson(server: LiveServer, path: str, count: int) -> float:
    start = time.perf_counter()
    lines = 0
    with (
        httpx.Client(headers={**AUTH, "Accept": "application/x-ndjson"}, timeout=600) as http,
        http.stream("GET", f"{server.vfolder_url}/list", params={"path": path}) as response,
    ):
        for _line in response.iter_lines():
            lines += 1
    assert lines == count + 1, (lines, count)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp, live_server(Path(tmp)) as server:
        for size in (int(s) for s in args.sizes.split(",")):
            name = f"dir-{size}"
            make_entries(server.vfolder_root / name, size)
            ls, pages, ndjson, growth = [], [], [], []
            for _ in range(args.runs):
                ls.append(time_ls(server.vfolder_root / name))
                server.reset_peak()
                base = server.rss_kib()
                pages.append(time_pages(server, name, size))
                ndjson.append(time_ndjson(server, name, size))
                growth.append((server.peak_rss_kib() - base) / 1024)
            ls_s = statistics.median(ls)
            print(f"\n== {size} entries, median of {args.runs} runs")
            print(f"{'ls -la':<28}{ls_s:>8.3f} s")
            for label, values in (("API, pages of 1000", pages), ("API, NDJSON", ndjson)):
                value = statistics.median(values)
                print(f"{label:<28}{value:>8.3f} s  {value / ls_s:>5.1f}x ls")
            print(f"{'server peak RSS growth':<28}{statistics.median(growth):>8.1f} MiB")


if __name__ == "__main__":
    main()
