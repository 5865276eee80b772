"""Download speed: a 1 GiB file through the proxy vs nginx serving the same file on
loopback in the same run (when nginx is installed); then 200 random 1 MiB ranges with 16
concurrent clients, requests/s.

    .venv/bin/python bench/download.py [--size-mib 1024] [--runs 3]

curl is the single-stream client for both servers, so neither is limited by a Python client.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_server import AUTH, LiveServer, live_server

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {tmp};
    proxy_temp_path {tmp};
    fastcgi_temp_path {tmp};
    uwsgi_temp_path {tmp};
    scgi_temp_path {tmp};
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def curl_mib_s(url: str, headers: dict[str, str]) -> float:
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download} %{http_code}", url]
    for name, value in headers.items():
        args[1:1] = ["-H", f"{name}: {value}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "200", out
    return float(out[0]) / (1024 * 1024)


async def ranges_per_second(url: str, headers: dict[str, str], size: int) -> float:
    rng = random.Random(7)
    starts = [rng.randrange(0, size - (1 << 20)) for _ in range(200)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for start in starts:
        queue.put_nowait(start)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            start = queue.get_nowait()
            r = await client.get(
                url, headers={**headers, "Range": f"bytes={start}-{start + (1 << 20) - 1}"}
            )
            assert r.status_code == 206 and len(r.content) == 1 << 20

    async with httpx.AsyncClient(timeout=60) as client:
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(16)))
        return len(starts) / (time.perf_counter() - began)


def start_nginx(tmp: Path, root: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        return None
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, root=root))
    process = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process, f"http://127.0.0.1:{port}"
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    with (
        tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp_dir,
        live_server(Path(tmp_dir)) as server,
    ):
        tmp = Path(tmp_dir)
        target = server.vfolder_root / "big.bin"
        with target.open("wb") as out:
            block = random.randbytes(1 << 20)
            for _ in range(args.size_mib):
                out.write(block)
        proxy_url = f"{server.vfolder_url}/files/big.bin"
        nginx = start_nginx(tmp, server.vfolder_root)
        try:
            report(server, proxy_url, nginx[1] + "/big.bin" if nginx else None, size, args.runs)
        finally:
            if nginx:
                nginx[0].terminate()
                nginx[0].wait()


def report(server: LiveServer, proxy_url: str, nginx_url: str | None, size: int, runs: int) -> None:
    proxy, base = [], []
    server.reset_peak()
    rss_before = server.rss_kib()
    for _ in range(runs):  # interleaved, so both see the same page cache and machine state
        if nginx_url:
            base.append(curl_mib_s(nginx_url, {}))
        proxy.append(curl_mib_s(proxy_url, AUTH))
    rss_growth = (server.peak_rss_kib() - rss_before) / 1024
    proxy_rps = [asyncio.run(ranges_per_second(proxy_url, AUTH, size)) for _ in range(runs)]
    nginx_rps = (
        [asyncio.run(ranges_per_second(nginx_url, {}, size)) for _ in range(runs)]
        if nginx_url
        else []
    )
    print(f"\n== download of {size >> 20} MiB, median of {runs} runs")
    print(f"{'proxy single stream':<34}{statistics.median(proxy):>10.0f} MiB/s")
    if base:
        ratio = statistics.median(proxy) / statistics.median(base)
        label = "nginx single stream (baseline)"
        print(f"{label:<34}{statistics.median(base):>10.0f} MiB/s  proxy = {ratio:.0%}")
    else:
        print("nginx not installed: no baseline")
    print(f"{'proxy peak RSS growth':<34}{rss_growth:>10.1f} MiB")
    print(f"{'proxy 1 MiB ranges, 16 concurrent':<34}{statistics.median(proxy_rps):>10.0f} req/s")
    if nginx_rps:
        print(
            f"{'nginx 1 MiB ranges, 16 concurrent':<34}{statistics.median(nginx_rps):>10.0f} req/s"
        )


if __name__ == "__main__":
    main()
