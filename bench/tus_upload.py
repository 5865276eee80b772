"""Resumable-upload speed: 1 GiB in 64 MiB PATCHes, 1 GiB in one PATCH, and 8 concurrent
128 MiB uploads, against `dd ... conv=fsync` into the same volume in the same run; the
server's peak RSS throughout. A second baseline, a bare Python socket-to-file copy, shows what
any Python server can reach on this machine.

    .venv/bin/python bench/tus_upload.py [--size-mib 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_server import AUTH, LiveServer, live_server

TUS = {**AUTH, "Tus-Resumable": "1.0.0", "X-Act-As-User": "bench"}
MIB = 1024 * 1024


def file_chunks(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as source:
        source.seek(start)
        remaining = length
        while remaining > 0:
            block = source.read(min(MIB, remaining))
            if not block:
                return
            remaining -= len(block)
            yield block


def tus_upload(server: LiveServer, source: Path, size: int, patch_bytes: int, name: str) -> None:
    with httpx.Client(headers=TUS, timeout=600) as http:
        created = http.post(
            f"{server.vfolder_url}/uploads",
            headers={"Upload-Length": str(size), "Upload-Metadata": f"path {_b64(name)}"},
        )
        assert created.status_code == 201, created.text
        url = server.base_url + created.headers["location"]
        offset = 0
        while offset < size:
            length = min(patch_bytes, size - offset)
            response = http.patch(
                url,
                headers={
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                    "Content-Length": str(length),
                },
                content=file_chunks(source, offset, length),
            )
            assert response.status_code == 204, response.text
            offset += length


def curl_single_patch(server: LiveServer, source: Path, size: int, name: str) -> None:
    """The one-PATCH case with curl as the client, so that a Python client competing for
    the same two cores does not set the figure."""
    with httpx.Client(headers=TUS, timeout=600) as http:
        created = http.post(
            f"{server.vfolder_url}/uploads",
            headers={"Upload-Length": str(size), "Upload-Metadata": f"path {_b64(name)}"},
        )
    url = server.base_url + created.headers["location"]
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PATCH", "-T", str(source)]
    for header, value in {
        **TUS,
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
    }.items():
        args += ["-H", f"{header}: {value}"]
    status = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    assert status == "204", status


def _b64(text: str) -> str:
    import base64

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


def timed(action: object) -> float:
    began = time.perf_counter()
    assert callable(action)
    action()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp, live_server(Path(tmp)) as server:
        source = Path(tmp) / "source.bin"
        with source.open("wb") as out:
            block = random.randbytes(MIB)
            for _ in range(args.size_mib):
                out.write(block)
        server.reset_peak()
        rss_before = server.rss_kib()
        dd, raw, chunked, single, parallel = [], [], [], [], []
        for run in range(args.runs):
            # Each figure starts with no dirty pages left over from the step before.
            os.sync()
            dd.append(dd_mib_s(source, server.volume_root / f"dd-{run}.bin", args.size_mib))
            os.sync()
            raw.append(
                raw_socket_mib_s(source, server.volume_root / f"raw-{run}.bin", args.size_mib)
            )
            os.sync()
            chunked.append(
                args.size_mib
                / timed(
                    lambda r=run: tus_upload(server, source, size, 64 * MIB, f"chunked-{r}.bin")
                )
            )
            os.sync()
            single.append(
                args.size_mib
                / timed(lambda r=run: curl_single_patch(server, source, size, f"single-{r}.bin"))
            )
            each = min(128 * MIB, size)
            threads = [
                threading.Thread(
                    target=tus_upload, args=(server, source, each, 64 * MIB, f"p{run}-{i}.bin")
                )
                for i in range(8)
            ]
            os.sync()
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            parallel.append(8 * each / MIB / (time.perf_counter() - began))
            for path in server.vfolder_root.iterdir():
                path.unlink()
        growth = (server.peak_rss_kib() - rss_before) / 1024
        peak = server.peak_rss_kib() / 1024
        dd_med = statistics.median(dd)
        print(f"\n== tus uploads, median of {args.runs} runs")
        print(f"{'dd conv=fsync (baseline)':<34}{dd_med:>8.0f} MiB/s")
        raw_med = statistics.median(raw)
        share = raw_med / dd_med
        print(
            f"{'socket -> file, Python, no HTTP':<34}{raw_med:>8.0f} MiB/s  = {share:.0%} of dd"
            " (what a Python server can reach)"
        )
        for label, values in (
            (f"{args.size_mib} MiB in 64 MiB PATCHes", chunked),
            (f"{args.size_mib} MiB in one PATCH (curl)", single),
            ("8 x 128 MiB concurrent", parallel),
        ):
            value = statistics.median(values)
            print(f"{label:<34}{value:>8.0f} MiB/s  = {value / dd_med:.0%} of dd")
        print(f"{'server peak RSS':<34}{peak:>8.1f} MiB (growth {growth:.1f} MiB)")


if __name__ == "__main__":
    main()
