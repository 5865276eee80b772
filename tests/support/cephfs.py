"""A real, throw-away single-node CephFS for the tests: 1 mon, 1 OSD on ``memstore`` (the
data lives in RAM), 1 MDS and 1 mgr, all on 127.0.0.1, mounted with ``ceph-fuse``. The mgr
is there for ``statfs``: without one the mount reports 0 bytes of capacity (the mon has no
pool statistics), and the proxy would refuse every upload as not fitting. Started
once per test session (per xdist worker) by the first test that needs it, torn down at exit.

It needs root, ``/dev/fuse`` and Debian's Ceph packages; the packages are installed with
apt-get when missing. The whole setup (install included) has a budget of
``SETUP_BUDGET_SECONDS``: past it, or where the machine cannot do it, the tests that need
CephFS are skipped with the reason, and the log says which way it went (``cephfs: ...``).
Like the loop-mounted filesystems and unlike PostgreSQL and Redis, STORAGE_REQUIRE_SERVICES
does not turn that skip into a failure: CI must not fail merely because Ceph cannot run.

What the bootstrap has to get right (each learnt the hard way):
- the mon address must be msgr v2 (``[v2:127.0.0.1:<port>]``), or clients hang;
- the OSD and MDS keys must be registered with the mon before ``ceph-osd --mkfs``;
- the OSD and log directories must exist before ``--mkfs`` (memstore asserts otherwise);
- ``ceph-fuse`` fails at once until the MDS is ``up:active``;
- ``statfs`` on the mount reads 0 until the mgr has reported pool statistics (seconds);
- every command is bounded (``timeout`` and ``--connect-timeout``), and the mount is never
  ``stat``-ed to find whether it is mounted: with the MDS gone that blocks for ever, so
  ``/proc/self/mountinfo`` is read instead and the unmount is ``umount -c`` (``-l`` last).

``python -m tests.support.cephfs up DIR`` / ``down DIR`` runs it by hand."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

log = logging.getLogger(__name__)

SETUP_BUDGET_SECONDS = 180.0
COMMAND_TIMEOUT = 20  # seconds, each ceph command
MDS_ACTIVE_TIMEOUT = 60.0
MEMSTORE_BYTES = 1024 * 1024 * 1024
PACKAGES = ("ceph-mon", "ceph-mgr", "ceph-osd", "ceph-mds", "ceph-fuse", "ceph-common")
COMMANDS: tuple[str, ...] = ("ceph", "ceph-mon", "ceph-osd", "ceph-mds", "ceph-mgr", "ceph-fuse")
COMMANDS += ("ceph-authtool", "monmaptool")
STATFS_TIMEOUT = 60.0
INSTALL_LOCK = Path(tempfile.gettempdir()) / "storage-proxy-tests-ceph-install.lock"
PORT_LOCK = Path(tempfile.gettempdir()) / "storage-proxy-tests-ceph-port.lock"


class CannotRun(Exception):
    """This machine cannot run the cluster: the tests skip, saying why."""


@dataclass(frozen=True)
class Cluster:
    state: Path  # everything the cluster has: config, keys, stores, logs, pids
    mount: Path  # the ceph-fuse mount point
    setup_seconds: float

    @property
    def conf(self) -> Path:
        return self.state / "ceph.conf"


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise CannotRun(f"setup took over {SETUP_BUDGET_SECONDS:.0f}s")
    return left


def _run(argv: list[str], deadline: float, *, daemon_log: Path | None = None) -> str:
    """Output of a bounded command. A daemon (``daemon_log``) keeps its inherited stdout and
    stderr open after it forks, so it gets a file instead of pipes nobody would close."""
    timeout = min(COMMAND_TIMEOUT + 6, _remaining(deadline))
    try:
        if daemon_log is None:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            stdout, stderr, returncode = done.stdout, done.stderr, done.returncode
        else:
            with daemon_log.open("a") as out:
                returncode = subprocess.run(
                    argv,
                    stdout=out,
                    stderr=out,
                    timeout=timeout,
                    check=False,
                    stdin=subprocess.DEVNULL,
                ).returncode
            stdout, stderr = "", daemon_log.read_text(errors="replace")
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(argv[4:7])} timed out") from None
    if returncode != 0:
        last = stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"{' '.join(argv[4:7])} failed: {last[0][-300:]}")
    return stdout


def preflight() -> None:
    """``CannotRun`` where the machine rules the cluster out before any package question."""
    if sys.platform != "linux":
        raise CannotRun("CephFS tests need Linux")
    if os.geteuid() != 0:
        raise CannotRun("needs root (the Ceph daemons and the ceph-fuse mount)")
    if not Path("/dev/fuse").exists():
        raise CannotRun("no /dev/fuse (in a container: --device /dev/fuse --cap-add SYS_ADMIN)")
    try:
        filesystems = Path("/proc/filesystems").read_text()
    except OSError as exc:
        raise CannotRun(f"cannot read /proc/filesystems: {exc}") from None
    if "fuse" not in filesystems.split():
        raise CannotRun("the kernel has no FUSE support")


def missing_commands() -> list[str]:
    return [c for c in COMMANDS if shutil.which(c) is None]


def install(deadline: float) -> None:
    """Debian's Ceph packages, once per machine (xdist workers wait for each other)."""
    if shutil.which("apt-get") is None:
        raise CannotRun(f"{', '.join(missing_commands())} missing and no apt-get")
    with INSTALL_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not missing_commands():
            return
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
        ):
            try:
                done = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    timeout=_remaining(deadline),
                    env=env,
                    check=False,
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired:
                raise CannotRun(f"setup took over {SETUP_BUDGET_SECONDS:.0f}s (apt)") from None
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
                raise CannotRun(f"{' '.join(argv[:2])} failed: {' '.join(tail)}")
    if missing_commands():
        raise CannotRun(f"still missing after the install: {', '.join(missing_commands())}")


def _free_port() -> int:
    import socket

    for port in range(16789, 16889):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 16789-16888 for the mon")


def mounted(path: Path) -> bool:
    """From /proc/self/mountinfo only: a stat of a dead ceph-fuse mount never returns."""
    escaped = str(path).replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011")
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return False
    return any(len(f) > 4 and f[4] == escaped for f in (line.split(" ") for line in lines))


def _alive(pid: int) -> bool:
    """Running and not a zombie (where pid 1 does not reap, kill -0 succeeds on those)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(") ")[2][:1] not in ("Z", "")


def _our_pid(state: Path, daemon: str) -> int | None:
    """The recorded pid of ``daemon``, only while that process is ours (its command line
    names our ceph.conf): a recycled pid is never signalled."""
    try:
        pid = int((state / "pids" / f"{daemon}.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except (OSError, ValueError):
        return None
    if not _alive(pid) or f"-c {state / 'ceph.conf'} ".encode() not in cmdline + b" ":
        return None
    return pid


def _record_pid(state: Path, daemon: str) -> None:
    written = state / "run" / f"{daemon}.pid"
    for _ in range(100):
        if written.is_file() and written.read_text().strip():
            (state / "pids" / f"{daemon}.pid").write_text(written.read_text())
            if _our_pid(state, daemon) is not None:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{daemon} did not start (no pid file)")


def _stop(pid: int, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 3
        while _alive(pid) and time.monotonic() < end:
            time.sleep(0.05)


def _config(state: Path, port: int, fsid: str) -> str:
    # Admin sockets go to run/; a Unix socket path has at most 107 bytes, so none for long
    # state paths (nothing here needs them).
    no_socket = "admin socket =\n" if len(str(state)) > 70 else ""
    return f"""[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{port}]
public network = 127.0.0.0/8
auth allow insecure global id reclaim = true
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = {MEMSTORE_BYTES}
run dir = {state}/run
{no_socket}pid file = {state}/run/$name.pid
log file = {state}/log/$name.log
keyring = {state}/keyring
ms bind ipv6 = false
mon data avail warn = 1
client mount timeout = {COMMAND_TIMEOUT}
[mon.a]
mon data = {state}/mon
[osd.0]
osd data = {state}/osd0
mgr stats period = 1
mon mgr digest period = 1
[mds.a]
mds data = {state}/mds
[mgr.x]
mgr data = {state}/mgr
"""


def up(state: Path, *, deadline: float | None = None) -> Cluster:
    """Start a cluster in the empty (or new) directory ``state`` and mount it on
    ``state/mnt``. On failure, what was started is stopped and ``RuntimeError`` says why
    (with the tails of the daemons' logs); ``CannotRun`` where the machine cannot."""
    began = time.monotonic()
    if deadline is None:
        deadline = began + SETUP_BUDGET_SECONDS
    preflight()
    if missing_commands():
        install(deadline)
    state.mkdir(parents=True, exist_ok=True)
    if any(state.iterdir()):
        raise RuntimeError(f"{state} is not empty")
    conf = state / "ceph.conf"
    for sub in ("run", "log", "pids", "mon", "osd0", "mds", "mgr", "mnt"):
        (state / sub).mkdir()
    fsid = str(uuid.uuid4())
    keyring = state / "keyring"
    ceph = ["ceph", "-c", str(conf), "--connect-timeout", str(COMMAND_TIMEOUT)]

    def run(*argv: str, daemon: bool = False) -> str:
        daemon_log = state / "log" / "start.out" if daemon else None
        bounded = ["timeout", "-k", "5", str(COMMAND_TIMEOUT), *argv]
        return _run(bounded, deadline, daemon_log=daemon_log)

    # Clusters of parallel sessions (xdist workers) each pick a free port: one at a time,
    # from the pick until the mon holds it.
    port_lock = PORT_LOCK.open("w")
    try:
        fcntl.flock(port_lock, fcntl.LOCK_EX)
        port = _free_port()
        conf.write_text(_config(state, port, fsid))
        run("ceph-authtool", "--create-keyring", str(keyring), "--gen-key", "-n", "mon.",
            "--cap", "mon", "allow *")  # fmt: skip
        run("ceph-authtool", str(keyring), "--gen-key", "-n", "client.admin", "--cap", "mon",
            "allow *", "--cap", "osd", "allow *", "--cap", "mds", "allow *", "--cap", "mgr",
            "allow *")  # fmt: skip
        run("monmaptool", "--create", "--fsid", fsid, "--addv", "a",
            f"[v2:127.0.0.1:{port}]", str(state / "monmap"))  # fmt: skip
        run("ceph-mon", "-c", str(conf), "--mkfs", "-i", "a", "--monmap", str(state / "monmap"),
            "--keyring", str(keyring))  # fmt: skip
        run("ceph-mon", "-c", str(conf), "-i", "a", daemon=True)
        _record_pid(state, "mon.a")
        with keyring.open("a") as keys:
            keys.write(run(*ceph, "auth", "get-or-create", "osd.0", "mon", "allow profile osd",
                           "osd", "allow *", "mgr", "allow profile osd"))  # fmt: skip
            keys.write(run(*ceph, "auth", "get-or-create", "mds.a", "mon", "allow profile mds",
                           "osd", "allow *", "mds", "allow *", "mgr",
                           "allow profile mds"))  # fmt: skip
            keys.write(run(*ceph, "auth", "get-or-create", "mgr.x", "mon", "allow profile mgr",
                           "osd", "allow *", "mds", "allow *"))  # fmt: skip
        port_lock.close()  # the mon answered: it holds its port
        run("ceph-mgr", "-c", str(conf), "-i", "x", daemon=True)
        _record_pid(state, "mgr.x")
        osd_id = run(*ceph, "osd", "create").strip()
        if osd_id != "0":
            raise RuntimeError(f"osd create gave {osd_id!r}, not 0")
        run("ceph-osd", "-c", str(conf), "-i", "0", "--mkfs")
        run("ceph-osd", "-c", str(conf), "-i", "0", daemon=True)
        _record_pid(state, "osd.0")
        run(*ceph, "osd", "pool", "create", "cephfs_data", "8")
        run(*ceph, "osd", "pool", "create", "cephfs_meta", "8")
        run(*ceph, "fs", "new", "cephfs", "cephfs_meta", "cephfs_data")
        run("ceph-mds", "-c", str(conf), "-i", "a", daemon=True)
        _record_pid(state, "mds.a")
        active_by = min(deadline, time.monotonic() + MDS_ACTIVE_TIMEOUT)
        while "up:active" not in run(*ceph, "mds", "stat"):
            if time.monotonic() > active_by:
                raise RuntimeError("the MDS did not become active")
            if _our_pid(state, "mds.a") is None:
                raise RuntimeError("ceph-mds exited")
            time.sleep(0.3)
        run("ceph-fuse", "-c", str(conf), "--id", "admin", str(state / "mnt"), daemon=True)
        _record_pid(state, "client.admin")
        if not mounted(state / "mnt"):
            raise RuntimeError("ceph-fuse did not mount")
        probe = state / "mnt" / ".probe"
        probe.write_bytes(b"ok")
        probe.unlink()
        statfs_by = min(deadline, time.monotonic() + STATFS_TIMEOUT)
        while os.statvfs(state / "mnt").f_blocks == 0:
            if time.monotonic() > statfs_by:
                raise RuntimeError("the mount reports no capacity (no pool statistics)")
            time.sleep(0.5)
    except BaseException as exc:
        port_lock.close()
        tails = _log_tails(state)
        down(state)
        if isinstance(exc, RuntimeError):
            raise RuntimeError(f"{exc}{tails}") from None
        raise
    return Cluster(state, state / "mnt", time.monotonic() - began)


def _log_tails(state: Path) -> str:
    lines = []
    for path in sorted((state / "log").glob("*.log")):
        with contextlib.suppress(OSError):
            tail = path.read_text(errors="replace").strip().splitlines()[-1:]
            lines += [f"  {path.name}: {line}" for line in tail]
    return ("\n" + "\n".join(lines)) if lines else ""


def down(state: Path) -> None:
    """Unmount, stop the daemons started for ``state`` (by their recorded pids, checked to
    be ours), delete ``state``. Safe to repeat."""
    mnt = state / "mnt"
    fuse = _our_pid(state, "client.admin")
    if mounted(mnt):
        argv = ["umount", "-c", str(mnt)]
        if subprocess.run(argv, capture_output=True, timeout=15, check=False).returncode != 0:
            if fuse is not None:
                _stop(fuse, 2)  # a ceph-fuse whose MDS is gone ignores SIGTERM
            lazy = ["umount", "-l", "-c", str(mnt)]
            subprocess.run(lazy, capture_output=True, timeout=15, check=False)
    if fuse is not None:  # exits by itself after the unmount while the MDS answers
        end = time.monotonic() + 3
        while _alive(fuse) and time.monotonic() < end:
            time.sleep(0.05)
    # The data is throw-away: the MDS need not shut down cleanly (that takes 5 s).
    stopping = (("client.admin", 1.0), ("mds.a", 1.0), ("mgr.x", 1.0), ("osd.0", 4.0))
    for daemon, grace in (*stopping, ("mon.a", 4.0)):
        pid = _our_pid(state, daemon)
        if pid is not None:
            _stop(pid, grace)
    if mounted(mnt):
        log.warning("cephfs: %s is still mounted; leaving %s in place", mnt, state)
        return
    shutil.rmtree(state, ignore_errors=True)


# -- the session's cluster ---------------------------------------------------------------

_cluster: Cluster | str | None = None  # the cluster, or why there is none


def _status_line(result: Cluster | str) -> str:
    if isinstance(result, Cluster):
        return (
            f"cephfs: tests run on a single-node Ceph cluster mounted at {result.mount} "
            f"(set up in {result.setup_seconds:.1f}s)"
        )
    return f"cephfs: tests SKIPPED, no CephFS here ({result})"


def session_cluster() -> Cluster | str:
    """The session's cluster, started on first use, or why there is none. Says which way
    it went on stderr and in the log."""
    global _cluster
    if _cluster is None:
        state = Path(tempfile.mkdtemp(prefix="sp-ceph-"))
        try:
            cluster = up(state)
        except (CannotRun, RuntimeError, OSError) as exc:
            shutil.rmtree(state, ignore_errors=True)
            _cluster = str(exc)
        else:
            atexit.register(down, state)
            _cluster = cluster
        line = _status_line(_cluster)
        log.warning("%s", line)
        if sys.__stderr__ is not None:  # seen even with the output captured
            sys.__stderr__.write(f"\n{line}\n")
            sys.__stderr__.flush()
    return _cluster


def session_status_line() -> str | None:
    """Which way it went in this process, if a test here asked for the cluster."""
    return None if _cluster is None else _status_line(_cluster)


def cephfs_status() -> str:
    """For the test log's header: without starting anything, which way it will go."""
    try:
        preflight()
    except CannotRun as exc:
        return _status_line(str(exc))
    if isinstance(_cluster, (Cluster, str)):
        return _status_line(_cluster)
    missing = missing_commands()
    how = f"installs {' '.join(PACKAGES)} first, then " if missing else ""
    return (
        f"cephfs: the first test that needs CephFS {how}starts a single-node cluster "
        f"(budget {SETUP_BUDGET_SECONDS:.0f}s; skipped past it, saying why)"
    )


def cephfs_scratch() -> Path:
    """A fresh directory on the session's CephFS, or a skip that says why."""
    cluster = session_cluster()
    if not isinstance(cluster, Cluster):
        pytest.skip(f"cephfs tests skipped: no CephFS here ({cluster})")
    scratch = cluster.mount / uuid.uuid4().hex
    scratch.mkdir()
    return scratch


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        sys.stderr.write("usage: python -m tests.support.cephfs up|down DIR\n")
        return 2
    state = Path(argv[1]).resolve()
    if argv[0] == "down":
        down(state)
        return 0
    try:
        cluster = up(state)
    except CannotRun as exc:
        sys.stderr.write(f"cannot run here: {exc}\n")
        return 3
    except RuntimeError as exc:
        sys.stderr.write(f"failed: {exc}\n")
        return 1
    sys.stdout.write(f"{cluster.mount}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
