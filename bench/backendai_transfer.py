"""Backend.AI client transfers: ``/upload`` (tus PATCHes, as the 23.9 client sends them) and
``/download`` against our own ``/v1`` tus upload and ``/v1`` download of the same bytes, in
the same run (the order of the paths turns from run to run), beside ``dd conv=fsync``; and,
with ``--reference``, the same two transfers on the reference Backend.AI storage proxy
23.9.10 (start it first, on loopback). curl is the client everywhere.

    .venv/bin/python bench/backendai_transfer.py [--size-mib 512] [--runs 6] [--reference]

Prints medians, the ratio of each Backend.AI path to our /v1 path (the target: within 10 %),
and the server CPU seconds per GiB moved, which is steadier than wall time on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_server import AUTH, free_port, live_server
from tus_upload import MIB, _b64, curl_patches, dd_mib_s, finish, split

MANAGER_KEY = "bench-manager-secret-0123456789abcdef012345"
AUTH_HEADER = "X-BackendAI-Storage-Auth-Token"
REF_DIR = Path(os.environ.get("REF_DIR", Path.home() / ".cache/storage-proxy-reference/backendai"))


@dataclass
class Proxy:
    """A storage proxy as the Manager and the 23.9 client see it."""

    name: str
    manager_url: str
    client_url: str
    secret: str
    pids: Callable[[], list[int]]
    vfid: str = ""

    def call(self, path: str, body: dict[str, object]) -> httpx.Response:
        reply = httpx.post(
            self.manager_url + path, json=body, headers={AUTH_HEADER: self.secret}, timeout=60
        )
        assert reply.is_success, (path, reply.status_code, reply.text)
        return reply

    def create_folder(self) -> None:
        self.vfid = f"user:{uuid.uuid4()}/{uuid.uuid4().hex}"
        self.call("/folder/create", {"volume": "local", "vfid": self.vfid, "options": {}})

    def token(self, op: str, relpath: str, size: int | None = None) -> str:
        body: dict[str, object] = {"volume": "local", "vfid": self.vfid, "relpath": relpath}
        if size is not None:
            body["size"] = size
        return str(self.call(f"/folder/file/{op}", body).json()["token"])

    def cpu_seconds(self) -> float:
        return sum(_cpu_seconds(pid) for pid in self.pids())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_tree(root: int) -> list[int]:
    """``root`` and its descendants (the reference runs a master and a worker)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def reference_proxy() -> Proxy:
    master = int((REF_DIR / "run" / "storage-proxy.pid").read_text())
    return Proxy(
        name="reference 23.9.10",
        manager_url=f"http://127.0.0.1:{os.environ.get('REF_MANAGER_PORT', '16022')}",
        client_url=f"http://127.0.0.1:{os.environ.get('REF_CLIENT_PORT', '16021')}",
        secret=os.environ.get("REF_MANAGER_KEY", "reference-manager-secret"),
        pids=lambda: _process_tree(master),
    )


def curl_download(url: str, headers: dict[str, str]) -> None:
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url]
    for name, value in headers.items():
        args[1:1] = ["-H", f"{name}: {value}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    assert out == "200", out


def v1_tus(base_url: str, vfolder_id: uuid.UUID, parts: list[Path], name: str) -> None:
    size = sum(part.stat().st_size for part in parts)
    created = httpx.post(
        f"{base_url}/v1/vfolders/{vfolder_id}/uploads",
        headers={
            **AUTH,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(size),
            "Upload-Metadata": f"path {_b64(name)},overwrite {_b64('true')}",
        },
    )
    assert created.status_code == 201, created.text
    url = base_url + created.headers["location"]
    finish(curl_patches(url, parts, headers=AUTH), len(parts))


def backendai_upload(proxy: Proxy, parts: list[Path], name: str) -> None:
    size = sum(part.stat().st_size for part in parts)
    token = proxy.token("upload", name, size)
    finish(curl_patches(f"{proxy.client_url}/upload?token={token}", parts, headers={}), len(parts))


Step = tuple[str, Proxy, Callable[..., None]]


def backendai_download(proxy: Proxy, name: str) -> None:
    curl_download(f"{proxy.client_url}/download?token={proxy.token('download', name)}", {})


@dataclass
class Figure:
    mib_s: list[float]
    cpu_s_per_gib: list[float]

    def add(self, proxy: Proxy, size_mib: int, action: Callable[[], None]) -> None:
        os.sync()
        cpu = proxy.cpu_seconds()
        began = time.perf_counter()
        action()
        elapsed = time.perf_counter() - began
        self.mib_s.append(size_mib / elapsed)
        self.cpu_s_per_gib.append((proxy.cpu_seconds() - cpu) / (size_mib / 1024))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--runs", type=int, default=6, help="a multiple of the paths compared")
    parser.add_argument("--reference", action="store_true", help="also the reference proxy")
    args = parser.parse_args()
    manager_port = free_port()
    extra_env = {
        "STORAGE_MANAGER_API_SECRET": MANAGER_KEY,
        "STORAGE_MANAGER_API_PORT": str(manager_port),
        "STORAGE_MANAGER_CLIENT_TOKEN_SECRET": "bench-client-token-0123456789abcdef0123456",
    }
    with (
        tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp,
        live_server(Path(tmp), extra_env=extra_env) as server,
    ):
        ours = Proxy(
            name="ours",
            manager_url=f"http://127.0.0.1:{manager_port}",
            client_url=server.base_url,
            secret=MANAGER_KEY,
            pids=lambda: [server.pid],
        )
        ours.create_folder()
        folder = uuid.UUID(ours.vfid.rpartition("/")[2])
        proxies = [ours]
        if args.reference:
            reference = reference_proxy()
            reference.create_folder()
            proxies.append(reference)
        source = Path(tmp) / "source.bin"
        with source.open("wb") as out:
            block = random.randbytes(MIB)
            for _ in range(args.size_mib):
                out.write(block)
        parts = split(source, 64 * MIB)
        names = ["v1 tus", "v1 download"]
        names += [f"{p.name} /upload" for p in proxies] + [f"{p.name} /download" for p in proxies]
        figures = {name: Figure([], []) for name in names}
        dd: list[float] = []
        for run in range(args.runs):
            os.sync()
            dd.append(dd_mib_s(source, server.volume_root / f"dd-{run}.bin", args.size_mib))
            # Each path writes and then reads back a file of its own.
            v1_name = f"v1-{run}.bin"
            uploads: list[Step] = [
                ("v1 tus", ours, partial(v1_tus, server.base_url, folder, parts, v1_name))
            ]
            downloads: list[Step] = [
                (
                    "v1 download",
                    ours,
                    partial(
                        curl_download,
                        f"{server.base_url}/v1/vfolders/{folder}/files/{v1_name}",
                        AUTH,
                    ),
                )
            ]
            for index, proxy in enumerate(proxies):
                name = f"bai{index}-{run}.bin"
                uploads.append(
                    (f"{proxy.name} /upload", proxy, partial(backendai_upload, proxy, parts, name))
                )
                downloads.append(
                    (f"{proxy.name} /download", proxy, partial(backendai_download, proxy, name))
                )
            # The order turns every run: whatever goes second in a run writes while the disk
            # still flushes the first (0.68x seen here), so each path takes each place.
            for label, proxy, step in [*_turned(uploads, run), *_turned(downloads, run)]:
                figures[label].add(proxy, args.size_mib, step)
            print(
                f"run {run + 1}: dd {dd[-1]:.0f}, "
                + ", ".join(f"{k} {v.mib_s[-1]:.0f}" for k, v in figures.items()),
                flush=True,
            )
        report(args, statistics.median(dd), figures)


def _turned(items: list[Step], run: int) -> list[Step]:
    shift = run % len(items)
    return items[shift:] + items[:shift]


def report(args: argparse.Namespace, dd: float, figures: dict[str, Figure]) -> None:
    median = {name: statistics.median(f.mib_s) for name, f in figures.items()}
    cpu = {name: statistics.median(f.cpu_s_per_gib) for name, f in figures.items()}
    print(f"\n== {args.size_mib} MiB in 64 MiB PATCHes / one GET, curl, median of {args.runs}")
    print(f"{'dd conv=fsync (baseline)':<28}{dd:>8.0f} MiB/s")
    for name in figures:
        against = "v1 tus" if name.endswith("/upload") else "v1 download"
        ratio = (
            "" if name.startswith("v1") else f"  = {median[name] / median[against]:.2f}x {against}"
        )
        print(f"{name:<28}{median[name]:>8.0f} MiB/s  server CPU {cpu[name]:.2f} s/GiB{ratio}")


if __name__ == "__main__":
    main()
