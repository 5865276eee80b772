"""Resumable-upload speed: 1 GiB in 64 MiB PATCHes, 1 GiB in one PATCH, and 8 concurrent
128 MiB uploads, all sent by curl, against `dd ... conv=fsync` into the same volume in the
same run; the server's CPU share and peak RSS. A second baseline, a bare Python
socket-to-file copy, shows what any Python server can reach on this machine.

    .venv/bin/python bench/tus_upload.py [--size-mib 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_server import AUTH, LiveServer, live_server

TUS = {**AUTH, "Tus-Resumable": "1.0.0", "X-Act-As-User": "bench"}
MIB = 1024 * 1024


def create_upload(server: LiveServer, size: int, name: str) -> str:
    created = httpx.post(
        f"{server.vfolder_url}/uploads",
        headers={**TUS, "Upload-Length": str(size), "Upload-Metadata": f"path {_b64(name)}"},
    )
    assert created.status_code == 201, created.text
    return server.base_url + created.headers["location"]


def curl_patches(
    url: str, parts: list[Path], headers: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """One curl process sending ``parts`` as consecutive PATCHes over one connection: curl is
    the client in every case, so that a Python client competing for the same two cores does
    not set the figure."""
    args = ["curl", "-s"]
    offset = 0
    for index, part in enumerate(parts):
        if index:
            args.append("--next")
        args += ["-o", "/dev/null", "-w", "%{http_code}\\n", "-X", "PATCH", "-T", str(part)]
        for header, value in {
            **(TUS if headers is None else {**headers, "Tus-Resumable": "1.0.0"}),
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Expect": "",  # no 100-continue round trip before each body
        }.items():
            # "Name:" with no value makes curl drop that header rather than send it empty.
            args += ["-H", f"{header}: {value}" if value else f"{header}:"]
        args.append(url)
        offset += part.stat().st_size
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


def finish(curl: subprocess.Popen[str], patches: int) -> None:
    statuses, _ = curl.communicate()
    assert curl.returncode == 0 and statuses.split() == ["204"] * patches, statuses


def upload(server: LiveServer, parts: list[Path], name: str) -> None:
    url = create_upload(server, sum(part.stat().st_size for part in parts), name)
    finish(curl_patches(url, parts), len(parts))


def concurrent_uploads(server: LiveServer, parts: list[Path], uploads: int, name: str) -> None:
    urls = [
        create_upload(server, sum(part.stat().st_size for part in parts), f"{name}-{i}.bin")
        for i in range(uploads)
    ]
    curls = [curl_patches(url, parts) for url in urls]
    for curl in curls:
        finish(curl, len(parts))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def dd_mib_s(source: Path, target: Path, size_mib: int) -> float:
    began = time.perf_counter()
    subprocess.run(
        ["dd", f"if={source}", f"of={target}", "bs=1M", "conv=fsync", "status=none"], check=True
    )
    elapsed = time.perf_counter() - began
    target.unlink()
    return size_mib / elapsed


def raw_socket_mib_s(source: Path, target: Path, size_mib: int) -> float:
    """The ceiling for any Python receiver on this machine: bytes from a socket (sent with
    sendfile by another process) to a file in 1 MiB writes, then fsync; no HTTP at all."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        sender = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import socket, sys\n"
                f"c = socket.create_connection(('127.0.0.1', {port}))\n"
                f"c.sendfile(open({str(source)!r}, 'rb'))\n"
                "c.shutdown(socket.SHUT_WR)\nc.recv(1)",
            ]
        )
        began = time.perf_counter()
        conn, _ = listener.accept()
        with conn, target.open("wb") as out:
            buffer = memoryview(bytearray(MIB))
            while received := conn.recv_into(buffer):
                out.write(buffer[:received])
            out.flush()
            os.fsync(out.fileno())
            conn.sendall(b"k")
        elapsed = time.perf_counter() - began
        sender.wait()
    target.unlink()
    return size_mib / elapsed


def timed(action: Callable[[], None]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def split(source: Path, part_bytes: int) -> list[Path]:
    parts: list[Path] = []
    with source.open("rb") as whole:
        while block := whole.read(part_bytes):
            part = source.with_name(f"{source.name}.{len(parts):03}")
            part.write_bytes(block)
            parts.append(part)
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp, live_server(Path(tmp)) as server:
        source = Path(tmp) / "source.bin"
        with source.open("wb") as out:
            block = random.randbytes(MIB)
            for _ in range(args.size_mib):
                out.write(block)
        parts = split(source, 64 * MIB)
        each_mib = min(128, args.size_mib)
        server.reset_peak()
        rss_before = server.rss_kib()
        figures: dict[str, list[float]] = {
            "dd": [],
            "raw": [],
            "chunked": [],
            "single": [],
            "parallel": [],
            "cpu": [],
        }
        for run in range(args.runs):
            # Each figure starts with no dirty pages left over from the step before.
            os.sync()
            figures["dd"].append(
                dd_mib_s(source, server.volume_root / f"dd-{run}.bin", args.size_mib)
            )
            os.sync()
            figures["raw"].append(
                raw_socket_mib_s(source, server.volume_root / f"raw-{run}.bin", args.size_mib)
            )
            os.sync()
            elapsed = timed(partial(upload, server, parts, f"chunked-{run}.bin"))
            figures["chunked"].append(args.size_mib / elapsed)
            os.sync()
            cpu_before = server.cpu_seconds()
            elapsed = timed(partial(upload, server, [source], f"single-{run}.bin"))
            figures["single"].append(args.size_mib / elapsed)
            figures["cpu"].append((server.cpu_seconds() - cpu_before) / elapsed)
            os.sync()
            elapsed = timed(
                partial(concurrent_uploads, server, parts[: each_mib // 64 or 1], 8, f"p-{run}")
            )
            figures["parallel"].append(8 * each_mib / elapsed)
            print(
                f"run {run + 1}: "
                + ", ".join(f"{name} {values[-1]:.2f}" for name, values in figures.items()),
                flush=True,
            )
            for path in server.vfolder_root.iterdir():
                path.unlink()
        growth = (server.peak_rss_kib() - rss_before) / 1024
        peak = server.peak_rss_kib() / 1024
        medians = {name: statistics.median(values) for name, values in figures.items()}
        dd = medians["dd"]
        print(f"\n== tus uploads, curl as the client, median of {args.runs} runs")
        print(f"{'dd conv=fsync (baseline)':<34}{dd:>8.0f} MiB/s")
        print(
            f"{'socket -> file, Python, no HTTP':<34}{medians['raw']:>8.0f} MiB/s"
            f"  = {medians['raw'] / dd:.0%} of dd (what a Python server can reach)"
        )
        for label, name in (
            (f"{args.size_mib} MiB in 64 MiB PATCHes", "chunked"),
            (f"{args.size_mib} MiB in one PATCH", "single"),
            (f"8 x {each_mib} MiB concurrent", "parallel"),
        ):
            print(
                f"{label:<34}{medians[name]:>8.0f} MiB/s  = {medians[name] / dd:.0%} of dd"
                f", {medians[name] / medians['raw']:.0%} of the socket copy"
            )
        print(f"{'server CPU during one PATCH':<34}{medians['cpu']:>8.0%} of a core")
        print(f"{'server peak RSS':<34}{peak:>8.1f} MiB (growth {growth:.1f} MiB)")


if __name__ == "__main__":
    main()
