"""The XFS driver against a recording double of xfsprogs: the exact commands it issues, how it
reads their output, and how their failures surface. ``SubprocessRunner`` is tested with real
processes.

Why a double: a kernel without ``CONFIG_XFS_QUOTA`` (this project's machines) mounts XFS but
refuses ``prjquota``. ``test_project_quota_on_this_kernel`` tries it once per session and says
in the test log (skip reason, and the log's header) which way it went; where the kernel has
XFS quota it runs the driver for real on a loop-mounted image."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from drivers.base import FastUsageCapable, QuotaCapable, capabilities_of
from drivers.commands import CommandResult, SubprocessRunner
from drivers.driver import Driver
from drivers.errors import BackendCommandFailed, BackendUnavailable, VFolderDirectoryMissing
from drivers.paths import parse_relative_path
from drivers.registry import build_driver
from drivers.staging import VFOLDER_STAGING_DIR
from drivers.xfs import (
    PROJECT_ID_FIRST,
    PROJECT_ID_LAST,
    ProjectQuota,
    XfsProjectQuota,
    hard_limit_argument,
    parse_project_report,
    project_id_candidates,
    xfs_driver,
)
from tests.support.loop_mounts import xfs_project_quota

GIB = 1024**3

# Vfolders and the first project id each derives. The ids are pinned: they live on disk, so a
# change to the derivation would orphan every tagged vfolder.
ALPHA = uuid.UUID("0b7e2c1a-5f3d-4e8a-9c21-6d4f8a0e3b57")
ALPHA_ID = 3240271213
BRAVO = uuid.UUID("3f9a7d21-8c4e-4b6f-a1d3-92e5c7b0f814")
BRAVO_ID = 346261810
CHARLIE = uuid.UUID("c2d4e6f8-1a3b-4c5d-8e9f-0a1b2c3d4e5f")
CHARLIE_ID = 3706772994
DELTA = uuid.UUID("9e8d7c6b-5a49-4837-a625-14f3e2d1c0b9")
DELTA_ID = 1803955395  # not in the report
DELTA_SECOND_ID = 3422578069

# `xfs_quota -x -c 'report -p -b -n -N' /srv/xfs` as xfsprogs prints it (report.c:
# "#%-10u" then " %10llu %10llu %10llu     %02d %9s", in KiB; a blank line closes it):
# project 0 holds the untagged volume directories; 42 has no limit; BRAVO is over its hard
# limit (lowered below its usage); ALPHA is well under; CHARLIE is over its soft limit and
# in its grace period, whose column has a blank in it.
REPORT = (
    "#0                2108          0          0     00 [--------]\n"
    "#42                  8          0          0     00 [--------]\n"
    "#346261810     3145732          0    3145728     00 [--none--]\n"
    "#3240271213    1048576          0    2097152     00 [--------]\n"
    "#3706772994     204800     102400     409600     00  [6 days]\n"
    "\n"
)


def state_output(mount: str, *, enforcement: str = "ON") -> str:
    """`xfs_quota -x -c 'state -p' <mount>` (state.c)."""
    return (
        f"Project quota state on {mount} (/dev/sdb1)\n"
        "  Accounting: ON\n"
        f"  Enforcement: {enforcement}\n"
        "  Inode: #132 (2 blocks, 2 extents)\n"
        "Blocks grace time: [7 days]\n"
        "Blocks max warnings: 5\n"
        "Inodes grace time: [7 days]\n"
        "Inodes max warnings: 5\n"
        "Realtime Blocks grace time: [7 days]\n"
    )


class FakeXfsTools:
    """A test double of the ``xfs_quota`` and ``xfs_io`` binaries: records every argv and
    answers as xfsprogs does, from the project id of each directory (``projects``, which
    ``project -s`` updates) and a canned quota report. ``failures`` makes a subcommand exit
    1 with the given stderr, the way a failed xfs_quota command does."""

    def __init__(self, *, report: str = "") -> None:
        self.calls: list[tuple[str, ...]] = []
        self.report = report
        self.enforcement = "ON"
        self.projects: dict[str, int] = {}
        self.lsproj_output: str | None = None
        self.failures: dict[str, str] = {}

    async def run(self, argv: Sequence[str]) -> CommandResult:
        args = tuple(argv)
        self.calls.append(args)
        # A real run gives the loop to other tasks; so does the double.
        await anyio.lowlevel.checkpoint()
        command, target = args[3], args[4]  # xfs_io -r -c CMD FILE, xfs_quota -x -c CMD MOUNT
        if command.split()[0] in self.failures:
            return CommandResult(args, 1, "", self.failures[command.split()[0]])
        if Path(args[0]).name == "xfs_io":
            stdout = self.lsproj_output or f"projid = {self.projects.get(target, 0)}\n"
        else:
            stdout = self._xfs_quota(command.split(), target)
        return CommandResult(args, 0, stdout, "")

    def _xfs_quota(self, words: list[str], mount: str) -> str:
        match words:
            case ["state", "-p"]:
                return state_output(mount, enforcement=self.enforcement)
            case ["report", "-p", "-b", "-n", "-N"]:
                return self.report
            case ["project", "-s", "-p", path, project_id]:
                self.projects[path] = int(project_id)
                return (
                    f"Setting up project {project_id} (path {path})...\n"
                    f"Processed 1 (/etc/projects and cmdline) paths for project {project_id} "
                    "with recursion depth infinite (-1).\n"
                )
            case ["limit", "-p", bhard, _project_id] if bhard.startswith("bhard="):
                return ""
        raise AssertionError(f"xfs_quota has no command {' '.join(words)!r}")


def quota_call(driver: Driver, command: str) -> tuple[str, ...]:
    return ("xfs_quota", "-x", "-c", command, str(xfs(driver).mount_point))


def lsproj_call(driver: Driver, vfolder_id: uuid.UUID) -> tuple[str, ...]:
    return ("xfs_io", "-r", "-c", "lsproj", str(driver.vfolder_path(vfolder_id)))


def xfs(driver: Driver) -> XfsProjectQuota:
    """The driver's quota strategy, which is also its usage strategy."""
    assert isinstance(driver.quota, XfsProjectQuota) and driver.usage is driver.quota
    return driver.quota


@pytest.fixture
def tools() -> FakeXfsTools:
    return FakeXfsTools(report=REPORT)


@pytest.fixture
async def driver(tmp_path: Path, tools: FakeXfsTools) -> Driver:
    built = xfs_driver(tmp_path / "volume", runner=tools)
    await built.initialize()
    tools.calls.clear()
    return built


def make_untagged(driver: Driver, vfolder_id: uuid.UUID) -> Path:
    """A vfolder directory made before the volume was XFS-managed: in project 0."""
    path = driver.vfolder_path(vfolder_id)
    path.mkdir(parents=True)
    return path


def make_tagged(
    driver: Driver, tools: FakeXfsTools, vfolder_id: uuid.UUID, project_id: int
) -> None:
    path = make_untagged(driver, vfolder_id)
    tools.projects[str(path)] = project_id


# -- project ids -----------------------------------------------------------------------


def test_project_ids_are_pinned_and_in_range() -> None:
    assert project_id_candidates(ALPHA)[0] == ALPHA_ID
    assert project_id_candidates(BRAVO)[0] == BRAVO_ID
    assert project_id_candidates(CHARLIE)[0] == CHARLIE_ID
    assert project_id_candidates(DELTA)[:2] == (DELTA_ID, DELTA_SECOND_ID)
    for _ in range(200):
        candidates = project_id_candidates(uuid.uuid4())
        assert len(set(candidates)) == len(candidates)
        assert all(PROJECT_ID_FIRST <= c <= PROJECT_ID_LAST for c in candidates)


async def test_create_vfolder_tags_the_empty_directory(driver: Driver, tools: FakeXfsTools) -> None:
    await driver.create_vfolder(DELTA)
    path = driver.vfolder_path(DELTA)
    assert tools.calls == [
        lsproj_call(driver, DELTA),
        quota_call(driver, "report -p -b -n -N"),
        quota_call(driver, f"project -s -p {path} {DELTA_ID}"),
    ]

    tools.calls.clear()
    await driver.create_vfolder(DELTA)  # idempotent: already in its project
    assert tools.calls == [lsproj_call(driver, DELTA)]


async def test_a_taken_id_is_skipped(driver: Driver, tools: FakeXfsTools) -> None:
    # Some other directory is in the project DELTA's first id names.
    tools.report = (
        "#0                2108          0          0     00 [--------]\n"
        "#1803955395          4          0          0     00 [--------]\n"
        "\n"
    )
    await driver.create_vfolder(DELTA)
    assert tools.calls[-1] == quota_call(
        driver, f"project -s -p {driver.vfolder_path(DELTA)} {DELTA_SECOND_ID}"
    )

    tools.calls.clear()
    await xfs(driver).set_quota(DELTA, limit_bytes=GIB)
    assert tools.calls[-1] == quota_call(driver, f"limit -p bhard={GIB} {DELTA_SECOND_ID}")


async def test_an_inherited_foreign_project_is_not_the_vfolders(
    driver: Driver, tools: FakeXfsTools
) -> None:
    # An administrator tagged a parent; the vfolder inherited 42, which is not its own id.
    make_tagged(driver, tools, DELTA, 42)
    assert await xfs(driver).get_quota(DELTA) is None
    await xfs(driver).set_quota(DELTA, limit_bytes=GIB)
    assert tools.projects[str(driver.vfolder_path(DELTA))] == DELTA_ID
    assert tools.calls[-1] == quota_call(driver, f"limit -p bhard={GIB} {DELTA_ID}")


async def test_concurrent_creates_tag_once(driver: Driver, tools: FakeXfsTools) -> None:
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(driver.create_vfolder, DELTA)
    tagging = [call for call in tools.calls if call[3].startswith("project -s")]
    assert len(tagging) == 1


# -- set_quota -------------------------------------------------------------------------


async def test_set_quota_tags_an_untagged_vfolder_then_limits(
    driver: Driver, tools: FakeXfsTools
) -> None:
    path = make_untagged(driver, DELTA)
    await xfs(driver).set_quota(DELTA, limit_bytes=5 * GIB)
    assert tools.calls == [
        lsproj_call(driver, DELTA),
        quota_call(driver, "report -p -b -n -N"),
        quota_call(driver, f"project -s -p {path} {DELTA_ID}"),
        quota_call(driver, f"limit -p bhard=5368709120 {DELTA_ID}"),
    ]


async def test_set_quota_on_a_project_retags_the_tree_and_limits(
    driver: Driver, tools: FakeXfsTools
) -> None:
    make_tagged(driver, tools, ALPHA, ALPHA_ID)
    await xfs(driver).set_quota(ALPHA, limit_bytes=2 * GIB)
    path = driver.vfolder_path(ALPHA)
    assert tools.calls == [
        lsproj_call(driver, ALPHA),
        quota_call(driver, f"project -s -p {path} {ALPHA_ID}"),
        quota_call(driver, f"limit -p bhard=2147483648 {ALPHA_ID}"),
    ]


async def test_unset_quota_is_bhard_zero(driver: Driver, tools: FakeXfsTools) -> None:
    make_tagged(driver, tools, ALPHA, ALPHA_ID)
    await xfs(driver).set_quota(ALPHA, limit_bytes=None)
    assert tools.calls[-1] == quota_call(driver, f"limit -p bhard=0 {ALPHA_ID}")


def test_limits_are_whole_kib_and_never_zero() -> None:
    assert hard_limit_argument(None) == 0
    assert hard_limit_argument(GIB) == GIB
    assert hard_limit_argument(1536) == 2048
    # xfs_quota would read these as 0, which lifts the limit.
    assert hard_limit_argument(1) == 1024
    assert hard_limit_argument(0) == 1024
    with pytest.raises(ValueError, match="negative"):
        hard_limit_argument(-1)


async def test_missing_vfolder_runs_nothing(driver: Driver, tools: FakeXfsTools) -> None:
    # xfs_quota would walk the missing path silently and report success.
    with pytest.raises(VFolderDirectoryMissing):
        await xfs(driver).set_quota(DELTA, limit_bytes=GIB)
    with pytest.raises(VFolderDirectoryMissing):
        await xfs(driver).usage_bytes(DELTA)
    assert tools.calls == []


# -- get_quota and usage_bytes ---------------------------------------------------------


def test_report_parsing() -> None:
    assert parse_project_report(REPORT) == {
        0: ProjectQuota(used_bytes=2108 * 1024, hard_limit_bytes=0),
        42: ProjectQuota(used_bytes=8 * 1024, hard_limit_bytes=0),
        BRAVO_ID: ProjectQuota(used_bytes=3145732 * 1024, hard_limit_bytes=3 * GIB),
        ALPHA_ID: ProjectQuota(used_bytes=GIB, hard_limit_bytes=2 * GIB),
        CHARLIE_ID: ProjectQuota(used_bytes=200 * 1024**2, hard_limit_bytes=400 * 1024**2),
    }
    assert parse_project_report("") == {}


def test_report_parsing_skips_headers_and_refuses_garbage() -> None:
    with_header = (
        "Project quota on /srv/xfs (/dev/sdb1)\n"
        "                               Blocks                     \n"
        "Project ID       Used       Soft       Hard    Warn/Grace     \n"
        "---------- -------------------------------------------------- \n" + REPORT
    )
    assert parse_project_report(with_header) == parse_project_report(REPORT)
    with pytest.raises(BackendCommandFailed, match="unexpected line"):
        parse_project_report("#12 lots 0 0 00 [--------]\n")
    with pytest.raises(BackendCommandFailed, match="unexpected line"):
        parse_project_report("#12\n")


async def test_get_quota_and_usage_from_the_report(driver: Driver, tools: FakeXfsTools) -> None:
    make_tagged(driver, tools, ALPHA, ALPHA_ID)
    make_tagged(driver, tools, BRAVO, BRAVO_ID)
    make_tagged(driver, tools, CHARLIE, CHARLIE_ID)
    make_tagged(driver, tools, DELTA, DELTA_ID)

    assert await xfs(driver).get_quota(ALPHA) == 2 * GIB
    assert await xfs(driver).usage_bytes(ALPHA) == GIB
    # Over its limit: both read as they are, usage above the limit.
    assert await xfs(driver).get_quota(BRAVO) == 3 * GIB
    assert await xfs(driver).usage_bytes(BRAVO) == 3 * GIB + 4 * 1024
    assert await xfs(driver).get_quota(CHARLIE) == 400 * 1024**2
    assert await xfs(driver).usage_bytes(CHARLIE) == 200 * 1024**2
    # In its project, but the report has no line for it.
    assert await xfs(driver).get_quota(DELTA) is None
    assert await xfs(driver).usage_bytes(DELTA) == 0

    tools.calls.clear()
    await xfs(driver).usage_bytes(ALPHA)
    assert tools.calls == [lsproj_call(driver, ALPHA), quota_call(driver, "report -p -b -n -N")]


async def test_a_project_without_a_limit_has_no_quota(driver: Driver, tools: FakeXfsTools) -> None:
    tools.report = REPORT.replace(
        "#3240271213    1048576          0    2097152     00 [--------]",
        "#3240271213    1048576          0          0     00 [--------]",
    )
    make_tagged(driver, tools, ALPHA, ALPHA_ID)
    assert await xfs(driver).get_quota(ALPHA) is None
    assert await xfs(driver).usage_bytes(ALPHA) == GIB


async def test_an_untagged_vfolder_has_no_quota_and_no_fast_usage(
    driver: Driver, tools: FakeXfsTools
) -> None:
    make_untagged(driver, ALPHA)
    assert await xfs(driver).get_quota(ALPHA) is None
    # Counting 0 for a vfolder XFS does not count would corrupt the quota ledger.
    with pytest.raises(BackendUnavailable, match="not an XFS project"):
        await xfs(driver).usage_bytes(ALPHA)


# -- failures --------------------------------------------------------------------------


async def test_a_failing_command_raises_the_driver_error(
    driver: Driver, tools: FakeXfsTools
) -> None:
    make_tagged(driver, tools, ALPHA, ALPHA_ID)
    tools.failures["limit"] = "xfs_quota: cannot set limits: Operation not permitted\n"
    with pytest.raises(BackendCommandFailed) as caught:
        await xfs(driver).set_quota(ALPHA, limit_bytes=GIB)
    error = caught.value
    assert isinstance(error, BackendUnavailable)
    assert str(error) == (
        "xfs_quota exited with status 1: xfs_quota: cannot set limits: Operation not permitted"
    )
    assert error.returncode == 1
    assert error.argv == quota_call(driver, f"limit -p bhard={GIB} {ALPHA_ID}")


async def test_unreadable_lsproj_output_raises_the_driver_error(
    driver: Driver, tools: FakeXfsTools
) -> None:
    make_untagged(driver, ALPHA)
    tools.lsproj_output = "getprojid: Inappropriate ioctl for device\n"
    with pytest.raises(BackendCommandFailed, match="unexpected xfs_io lsproj output"):
        await xfs(driver).get_quota(ALPHA)


async def test_initialize_refuses_unenforced_project_quota(
    tmp_path: Path, tools: FakeXfsTools
) -> None:
    tools.enforcement = "OFF"
    with pytest.raises(BackendUnavailable, match="prjquota"):
        await xfs_driver(tmp_path, runner=tools).initialize()


# -- configuration ---------------------------------------------------------------------


def test_advertises_quota_and_fast_usage(tmp_path: Path, tools: FakeXfsTools) -> None:
    driver = xfs_driver(tmp_path, runner=tools)
    assert isinstance(driver.quota, QuotaCapable) and isinstance(driver.usage, FastUsageCapable)
    assert capabilities_of(driver) == ["fast-usage", "quota"]


async def test_options_name_the_binaries_and_the_mount_point(
    tmp_path: Path, tools: FakeXfsTools
) -> None:
    driver = xfs_driver(
        tmp_path / "volumes" / "a",
        options={
            "xfs_quota": "/usr/sbin/xfs_quota",
            "xfs_io": "/usr/sbin/xfs_io",
            "mount_point": str(tmp_path),
        },
        runner=tools,
    )
    await driver.initialize()
    await driver.create_vfolder(ALPHA)
    mount = str(await anyio.Path(tmp_path).resolve())
    assert tools.calls[0] == ("/usr/sbin/xfs_quota", "-x", "-c", "state -p", mount)
    assert tools.calls[1][0] == "/usr/sbin/xfs_io"
    assert tools.calls[-1][0] == "/usr/sbin/xfs_quota" and tools.calls[-1][-1] == mount


def test_registered_as_xfs(tmp_path: Path) -> None:
    driver = build_driver("xfs", root=tmp_path, options={"command_timeout": 5})
    assert isinstance(driver.quota, XfsProjectQuota) and driver.backend == "xfs"


def test_unusable_roots_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="not under mount point"):
        xfs_driver(tmp_path / "a", options={"mount_point": str(tmp_path / "b")})
    with pytest.raises(BackendUnavailable, match="blanks"):
        xfs_driver(tmp_path / "my volume")


# -- SubprocessRunner, with real processes ---------------------------------------------


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_subprocess_runner_returns_the_output() -> None:
    result = await SubprocessRunner().run(
        python("import os, sys; print('out'); print(os.environ['LC_ALL'], file=sys.stderr)")
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\n", "C\n")


async def test_subprocess_runner_raises_on_non_zero_exit() -> None:
    code = "import sys; sys.exit('xfs_quota: cannot set limits: Operation not permitted')"
    with pytest.raises(BackendCommandFailed, match="status 1: xfs_quota: cannot set limits"):
        await SubprocessRunner().run(python(code))


async def test_subprocess_runner_kills_a_command_that_overruns() -> None:
    started = time.monotonic()
    with pytest.raises(BackendCommandFailed, match=r"did not finish within 0\.2 s"):
        await SubprocessRunner(timeout=0.2).run(python("import time; time.sleep(30)"))
    assert time.monotonic() - started < 10


async def test_subprocess_runner_reports_a_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(BackendCommandFailed, match="cannot run xfs_quota"):
        await SubprocessRunner().run([str(tmp_path / "xfs_quota"), "-V"])


async def test_uploads_are_staged_inside_the_vfolders_project(driver: Driver) -> None:
    """The staged file is already in the vfolder's tree, so the commit is one rename in one
    project (XFS would refuse one across projects with EXDEV)."""
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    staged = await driver.files.create_staged(vfolder_id)
    staging_dir = driver.vfolder_path(vfolder_id) / VFOLDER_STAGING_DIR
    assert (staging_dir / staged.file.name).is_file()
    assert staging_dir.stat().st_mode & 0o077 == 0
    inode = os.fstat(staged.file.fd).st_ino
    await staged.write([b"data"])
    committed = await driver.files.commit_staged(
        staged, vfolder_id, parse_relative_path("f.bin"), replace=True, parents=False
    )
    final = driver.vfolder_path(vfolder_id) / "f.bin"
    assert final.stat().st_ino == inode == committed.version.inode  # renamed, not copied
    assert list(staging_dir.iterdir()) == []
    entries, _ = await driver.files.list_page(
        vfolder_id, parse_relative_path(""), after=None, recursive=True, limit=10
    )
    assert [str(e.path) for e in entries] == ["f.bin"]


async def test_an_upload_staged_by_an_earlier_release_goes_on(driver: Driver) -> None:
    """A tus upload begun before XFS volumes staged per vfolder has its file in the volume's
    area: it is reopened, placed and swept from there."""
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    (driver.root / ".staging" / "tus-old").write_bytes(b"begun")
    (driver.root / ".staging" / "tus-dead").write_bytes(b"abandoned")
    staged = await driver.files.open_staged(vfolder_id, "tus-old", create=False)
    await staged.write([b" before"])
    assert await driver.files.staged_exists(vfolder_id, "tus-old")
    await driver.files.commit_staged(
        staged, vfolder_id, parse_relative_path("old.bin"), replace=False, parents=False
    )
    assert (driver.vfolder_path(vfolder_id) / "old.bin").read_bytes() == b"begun before"
    keys = await driver.files.staging_candidates(older_than=time.time() + 60)
    assert keys == ["tus-dead"]
    assert await driver.files.remove_abandoned_staged("tus-dead", older_than=time.time() + 60)
    assert list((driver.root / ".staging").iterdir()) == []


# -- a real XFS project quota, where the kernel has one --------------------------------


async def test_project_quota_on_this_kernel() -> None:
    """Skipped, with the kernel's reason, on a kernel without XFS quota support."""
    mount, status = xfs_project_quota()
    if mount is None:
        pytest.skip(status)
    driver = xfs_driver(mount / uuid.uuid4().hex, options={"mount_point": str(mount)})
    await driver.initialize()
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    await xfs(driver).set_quota(vfolder_id, limit_bytes=1024 * 1024)
    assert await xfs(driver).get_quota(vfolder_id) == 1024 * 1024

    def overfill() -> None:
        with (driver.vfolder_path(vfolder_id) / "big").open("wb") as out:
            for _ in range(4):
                out.write(b"\0" * 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())

    with pytest.raises(OSError, match="Disk quota exceeded"):
        await anyio.to_thread.run_sync(overfill)
    assert await xfs(driver).usage_bytes(vfolder_id) >= 512 * 1024
