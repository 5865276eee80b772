"""The DDN EXAScaler / Lustre driver against a recording double of ``lfs`` (no Lustre here):
the exact commands it issues, how it reads their output (recorded and as lfs prints it), how
it picks project ids, and how failures surface. The files are real."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from drivers.base import FastUsageCapable, QuotaCapable, capabilities_of
from drivers.commands import CommandResult
from drivers.ddn import (
    PROJECT_ID_FIRST,
    PROJECT_ID_LAST,
    LustreProjectQuota,
    LustreQuota,
    block_limit_argument,
    ddn_driver,
    parse_project_listing,
    parse_quota,
    project_id_candidates,
)
from drivers.ddn.quota import CLAIMS_DIR
from drivers.driver import Driver
from drivers.errors import (
    BackendCommandFailed,
    BackendUnavailable,
    InvalidDriverOptions,
    VFolderDirectoryMissing,
)
from drivers.paths import parse_relative_path
from drivers.registry import build_driver, canonical_driver_name
from drivers.staging import VFOLDER_STAGING_DIR

KIB = 1024
GIB = 1024**3

# Pinned: ids live on directories, a change to the derivation would orphan every vfolder.
ALPHA = uuid.UUID("0b7e2c1a-5f3d-4e8a-9c21-6d4f8a0e3b57")
ALPHA_IDS = (213018866, 920831417, 1562661173)
BRAVO = uuid.UUID("3f9a7d21-8c4e-4b6f-a1d3-92e5c7b0f814")
BRAVO_IDS = (3433758428, 2529429069, 1459074069)

# -- recorded lfs output (origin: BAI volumes/ddn/__init__.py docstring, reference §4.6,
# and lustre/utils/lfs.c print_quota_title/print_quota for the other variants) -------------

# BAI's docstring: a path over 15 characters, alone on its line; numbers on the next.
BAI_QUOTA = (
    "Disk quotas for prj 101 (pid 101):\n"
    "     Filesystem  kbytes   quota   limit   grace   files   quota   limit   grace\n"
    "/mnt/lufs01/vfroot/0123456789abcdef0123456789abcdef\n"
    "                   1004       0    2048       -       2       0       0       -\n"
)
# Over its hard limit (#1901): lfs prints '*' right after kbytes.
OVER_QUOTA = (
    "Disk quotas for prj 101 (pid 101):\n"
    "     Filesystem  kbytes   quota   limit   grace   files   quota   limit   grace\n"
    "    /mnt/lustre    2052*      0    2048       -       3       0       0       -\n"
)
# Lustre 2.15+ names the block and inode columns apart.
HEADER_2_15 = (
    "Disk quotas for prj 101 (pid 101):\n"
    "     Filesystem  kbytes  bquota  blimit  bgrace   files  iquota  ilimit  igrace\n"
    "    /mnt/lustre     512       0 1048576       -       7       0       0       -\n"
)
# lfs quota -q: no title, no header.
QUIET = "    /mnt/lustre     512       0 1048576       -       7       0       0       -\n"
# Some target did not answer: values in brackets, and a notice after.
INACCURATE = (
    "Disk quotas for prj 101 (pid 101):\n"
    "     Filesystem  kbytes   quota   limit   grace   files   quota   limit   grace\n"
    "    /mnt/lustre   [512]       0  [2048]       -     [7]       0       0       -\n"
    "Some errors happened when getting quota info. Some devices may be not working or "
    'deactivated. The data in "[]" is inaccurate.\n'
)
NOBODY = (
    "Disk quotas for prj 4242 (pid 4242):\n"
    "     Filesystem  kbytes   quota   limit   grace   files   quota   limit   grace\n"
    "    /mnt/lustre       0       0       0       -       0       0       0       -\n"
)


def quota_text(
    mount: str, project_id: int, kbytes: int, limit: int, files: int, *, header: str = "2.12"
) -> str:
    """``lfs quota -p <id> <mount>`` as lfs.c prints it: its printf formats, kept as they are
    there (hence the % formatting)."""
    names = {
        "2.12": ("quota", "limit", "grace", "quota", "limit", "grace"),
        "2.15": ("bquota", "blimit", "bgrace", "iquota", "ilimit", "igrace"),
    }[header]
    title = f"Disk quotas for prj {project_id} (pid {project_id}):\n"
    head = "%15s%8s %7s%8s%8s%8s %7s%8s%8s\n" % (  # noqa: UP031
        "Filesystem", "kbytes", names[0], names[1], names[2], "files", *names[3:]
    )  # fmt: skip
    where = f"{mount}\n{'':15}" if len(mount) > 15 else f"{mount:>15}"
    over = "*" if limit and kbytes >= limit else " "
    blocks = " %7s%c %6s %7s %7s" % (kbytes, over, 0, limit, "-")  # noqa: UP031
    inodes = " %7s%c %6s %7s %7s\n" % (files, " ", 0, 0, "-")  # noqa: UP031
    return title + head + where + blocks + inodes


class FakeLfs:
    """A test double of the ``lfs`` binary: records every argv and answers as lfs does,
    from the project id of each directory (``projects``, which ``project -s`` updates), each
    project's usage (``usage``: KiB and files) and limits (``limits``, which ``setquota``
    updates). ``quota_output`` replaces an id's ``lfs quota`` answer with recorded text;
    ``failures`` makes a subcommand exit 1 with the given stderr."""

    def __init__(self, *, header: str = "2.12") -> None:
        self.calls: list[tuple[str, ...]] = []
        self.projects: dict[str, int] = {}
        self.usage: dict[int, tuple[int, int]] = {}
        self.limits: dict[int, int] = {}
        self.quota_output: dict[int, str] = {}
        self.failures: dict[str, str] = {}
        self.header = header

    async def run(self, argv: Sequence[str]) -> CommandResult:
        args = tuple(argv)
        self.calls.append(args)
        await anyio.lowlevel.checkpoint()  # a real run gives the loop to other tasks
        assert Path(args[0]).name == "lfs", args
        if args[1] in self.failures:
            return CommandResult(args, 1, "", self.failures[args[1]])
        return CommandResult(args, 0, self._answer(args[1:]), "")

    def _answer(self, words: tuple[str, ...]) -> str:
        match words:
            case ("project", "-d", path):
                project_id = self.projects.get(path, 0)
                return f"{project_id:5d} {'P' if project_id else '-'} {path}\n"
            case ("project", "-p", project_id, "-r", "-s", path):
                self.projects[path] = int(project_id)
                return ""
            case ("quota", "-p", project_id, mount):
                pid = int(project_id)
                if pid in self.quota_output:
                    return self.quota_output[pid]
                kbytes, files = self.usage.get(pid, (0, 0))
                limit = self.limits.get(pid, 0)
                return quota_text(mount, pid, kbytes, limit, files, header=self.header)
            case ("setquota", "-p", project_id, "-B", limit, _mount):
                self.limits[int(project_id)] = 0 if limit == "0" else int(limit.removesuffix("k"))
                return ""
        raise AssertionError(f"lfs has no command {' '.join(words)!r}")


@pytest.fixture
def lfs() -> FakeLfs:
    return FakeLfs()


@pytest.fixture
async def driver(tmp_path: Path, lfs: FakeLfs) -> Driver:
    built = ddn_driver(tmp_path / "volume", runner=lfs)
    await built.initialize()
    return built


def lustre(driver: Driver) -> LustreProjectQuota:
    assert isinstance(driver.quota, LustreProjectQuota) and driver.usage is driver.quota
    return driver.quota


def mount(driver: Driver) -> str:
    return str(lustre(driver).mount_point)


def listing(driver: Driver, vfolder_id: uuid.UUID) -> tuple[str, ...]:
    return ("lfs", "project", "-d", str(driver.vfolder_path(vfolder_id)))


def tagging(driver: Driver, vfolder_id: uuid.UUID, project_id: int) -> tuple[str, ...]:
    path = str(driver.vfolder_path(vfolder_id))
    return ("lfs", "project", "-p", str(project_id), "-r", "-s", path)


def quota_call(driver: Driver, project_id: int) -> tuple[str, ...]:
    return ("lfs", "quota", "-p", str(project_id), mount(driver))


def setquota(driver: Driver, project_id: int, limit: str) -> tuple[str, ...]:
    return ("lfs", "setquota", "-p", str(project_id), "-B", limit, mount(driver))


def make_untagged(driver: Driver, vfolder_id: uuid.UUID) -> Path:
    """A vfolder made before the volume was Lustre-managed: in project 0."""
    path = driver.vfolder_path(vfolder_id)
    path.mkdir(parents=True)
    return path


def make_tagged(driver: Driver, lfs: FakeLfs, vfolder_id: uuid.UUID, project_id: int) -> None:
    lfs.projects[str(make_untagged(driver, vfolder_id))] = project_id


# -- parsing ---------------------------------------------------------------------------


def test_bais_recorded_output_with_a_wrapped_path() -> None:
    assert parse_quota(BAI_QUOTA, 101) == LustreQuota(101, 1004 * KIB, 2048 * KIB, 2)


def test_over_quota_star_is_stripped() -> None:
    quota = parse_quota(OVER_QUOTA, 101)
    assert (quota.used_bytes, quota.limit_bytes, quota.files) == (2052 * KIB, 2048 * KIB, 3)
    assert parse_quota(OVER_QUOTA.replace("2052* ", "2052**"), 101).used_bytes == 2052 * KIB


@pytest.mark.parametrize("text", [HEADER_2_15, QUIET], ids=["lustre-2.15-header", "quiet"])
def test_header_variants(text: str) -> None:
    assert parse_quota(text, 101) == LustreQuota(101, 512 * KIB, GIB, 7)


def test_printed_output_of_both_headers_parses() -> None:
    for header in ("2.12", "2.15"):
        for where in ("/mnt/lustre", "/lustre/exa01/a/much/longer/volume/path"):
            text = quota_text(where, 7, 3000, 2048, 5, header=header)
            assert parse_quota(text, 7) == LustreQuota(7, 3000 * KIB, 2048 * KIB, 5)


def test_inaccurate_values_are_flagged() -> None:
    quota = parse_quota(INACCURATE, 101)
    assert quota == LustreQuota(101, 512 * KIB, 2048 * KIB, 7, accurate=False)


def test_an_unused_project_is_free() -> None:
    assert not parse_quota(NOBODY, 4242).in_use
    assert parse_quota(OVER_QUOTA, 101).in_use


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Disk quotas for prj 101 (pid 101):\n",
        "    /mnt/lustre   lots       0    2048       -       3       0       0       -\n",
        "    /mnt/lustre    1.5G       0    2048       -       3       0       0       -\n",
        "    /mnt/lustre    100\n",
        "     Filesystem  kbytes   what   ever\n    /mnt/lustre  1 2 3 4 5 6 7 8\n",
    ],
)
def test_unreadable_quota_output_is_a_command_failure(text: str) -> None:
    with pytest.raises(BackendCommandFailed, match="unexpected"):
        parse_quota(text, 101)


def test_an_answer_for_another_project_is_refused() -> None:
    with pytest.raises(BackendCommandFailed, match="project 101, not 102"):
        parse_quota(BAI_QUOTA, 102)


def test_project_listing() -> None:
    assert parse_project_listing("  101 P /mnt/lustre/vf\n") == 101
    assert parse_project_listing("    0 - /mnt/lustre/a dir with blanks\n") == 0
    assert parse_project_listing("3433758428 P /mnt/lustre/vf\n") == 3433758428
    with pytest.raises(BackendCommandFailed, match="unexpected lfs project output"):
        parse_project_listing("lfs: failed to get xattr for '/x': Operation not supported\n")


def test_block_limits_are_whole_kib_and_never_zero() -> None:
    assert block_limit_argument(None) == "0"
    assert block_limit_argument(GIB) == "1048576k"
    assert block_limit_argument(1536) == "2k"
    assert block_limit_argument(0) == "1k"  # 0 would lift the limit
    with pytest.raises(ValueError, match="negative"):
        block_limit_argument(-1)


def test_project_ids_are_pinned_and_in_range() -> None:
    assert project_id_candidates(ALPHA)[:3] == ALPHA_IDS
    assert project_id_candidates(BRAVO)[:3] == BRAVO_IDS
    for _ in range(100):
        candidates = project_id_candidates(uuid.uuid4())
        assert len(set(candidates)) == len(candidates) == 8
        assert all(PROJECT_ID_FIRST <= c <= PROJECT_ID_LAST for c in candidates)
    assert sorted(project_id_candidates(ALPHA, first=100, last=103)) == [100, 101, 102, 103]


# -- creating a vfolder: its project id ------------------------------------------------


async def test_create_vfolder_claims_and_tags_a_free_id(driver: Driver, lfs: FakeLfs) -> None:
    lfs.calls.clear()
    await driver.create_vfolder(ALPHA)
    assert lfs.calls == [
        listing(driver, ALPHA),
        quota_call(driver, ALPHA_IDS[0]),
        tagging(driver, ALPHA, ALPHA_IDS[0]),
    ]
    # The claim is outside the vfolder; nothing was written inside it.
    claim = driver.root / ".staging" / CLAIMS_DIR / str(ALPHA_IDS[0])
    assert claim.read_text() == ALPHA.hex
    assert list(driver.vfolder_path(ALPHA).iterdir()) == []

    lfs.calls.clear()
    await driver.create_vfolder(ALPHA)  # idempotent: read back from the directory
    assert lfs.calls == [listing(driver, ALPHA)]


async def test_an_id_in_use_is_skipped(driver: Driver, lfs: FakeLfs) -> None:
    lfs.usage[ALPHA_IDS[0]] = (4, 1)  # an administrator's project has files in it
    lfs.limits[ALPHA_IDS[1]] = 2048  # another has only a limit
    await driver.create_vfolder(ALPHA)
    assert lfs.calls[-1] == tagging(driver, ALPHA, ALPHA_IDS[2])

    lfs.calls.clear()
    await lustre(driver).set_quota(ALPHA, limit_bytes=GIB)
    assert lfs.calls[-1] == setquota(driver, ALPHA_IDS[2], "1048576k")


async def test_an_id_claimed_elsewhere_is_skipped_without_asking_lfs(
    driver: Driver, lfs: FakeLfs
) -> None:
    """Another proxy node claimed ALPHA's first id for its vfolder and has not tagged yet:
    lfs still shows the project empty, the claim is what keeps the id from being shared."""
    claims = driver.root / ".staging" / CLAIMS_DIR
    claims.mkdir()
    (claims / str(ALPHA_IDS[0])).write_text(BRAVO.hex)
    lfs.calls.clear()
    await driver.create_vfolder(ALPHA)
    assert quota_call(driver, ALPHA_IDS[0]) not in lfs.calls
    assert lfs.calls[-1] == tagging(driver, ALPHA, ALPHA_IDS[1])


async def test_its_own_claim_is_taken_up_again(driver: Driver, lfs: FakeLfs) -> None:
    """A proxy died between claiming and tagging: the vfolder gets the same id."""
    claims = driver.root / ".staging" / CLAIMS_DIR
    claims.mkdir()
    (claims / str(ALPHA_IDS[0])).write_text(ALPHA.hex)
    await driver.create_vfolder(ALPHA)
    assert lfs.calls[-1] == tagging(driver, ALPHA, ALPHA_IDS[0])


async def test_concurrent_creates_tag_once(driver: Driver, lfs: FakeLfs) -> None:
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(driver.create_vfolder, ALPHA)
    assert [c for c in lfs.calls if c[1:3] == ("project", "-p")] == [
        tagging(driver, ALPHA, ALPHA_IDS[0])
    ]


async def test_two_vfolders_never_share_an_id(tmp_path: Path, lfs: FakeLfs) -> None:
    """A range of two ids: every vfolder's candidates collide. Two drivers on one volume
    (two proxy processes) create at once; the claims keep them apart, and a third finds
    no free id."""
    options = {"project_id_first": 500, "project_id_last": 501}
    one = ddn_driver(tmp_path / "volume", options=options, runner=lfs)
    two = ddn_driver(tmp_path / "volume", options=options, runner=lfs)
    await one.initialize()
    async with anyio.create_task_group() as tg:
        tg.start_soon(one.create_vfolder, ALPHA)
        tg.start_soon(two.create_vfolder, BRAVO)
    ids = {lfs.projects[str(one.vfolder_path(v))] for v in (ALPHA, BRAVO)}
    assert ids == {500, 501}
    with pytest.raises(BackendUnavailable, match="no free Lustre project id"):
        await one.create_vfolder(uuid.uuid4())


async def test_an_inherited_foreign_project_is_not_the_vfolders(
    driver: Driver, lfs: FakeLfs
) -> None:
    make_tagged(driver, lfs, ALPHA, 42)  # a parent an administrator tagged
    assert await lustre(driver).get_quota(ALPHA) is None
    await lustre(driver).set_quota(ALPHA, limit_bytes=GIB)
    assert lfs.projects[str(driver.vfolder_path(ALPHA))] == ALPHA_IDS[0]
    assert lfs.calls[-1] == setquota(driver, ALPHA_IDS[0], "1048576k")


# -- quota and usage -------------------------------------------------------------------


async def test_set_quota_on_an_untagged_vfolder(driver: Driver, lfs: FakeLfs) -> None:
    make_untagged(driver, ALPHA)
    await lustre(driver).set_quota(ALPHA, limit_bytes=5 * GIB)
    assert lfs.calls == [
        listing(driver, ALPHA),
        quota_call(driver, ALPHA_IDS[0]),
        tagging(driver, ALPHA, ALPHA_IDS[0]),
        setquota(driver, ALPHA_IDS[0], "5242880k"),
    ]
    assert await lustre(driver).get_quota(ALPHA) == 5 * GIB


async def test_set_quota_on_a_project_retags_the_tree(driver: Driver, lfs: FakeLfs) -> None:
    make_tagged(driver, lfs, ALPHA, ALPHA_IDS[0])
    await lustre(driver).set_quota(ALPHA, limit_bytes=2 * GIB)
    assert lfs.calls == [
        listing(driver, ALPHA),
        tagging(driver, ALPHA, ALPHA_IDS[0]),
        setquota(driver, ALPHA_IDS[0], "2097152k"),
    ]


async def test_unset_quota_is_block_limit_zero(driver: Driver, lfs: FakeLfs) -> None:
    make_tagged(driver, lfs, ALPHA, ALPHA_IDS[0])
    await lustre(driver).set_quota(ALPHA, limit_bytes=GIB)
    await lustre(driver).set_quota(ALPHA, limit_bytes=None)
    assert lfs.calls[-1] == setquota(driver, ALPHA_IDS[0], "0")
    assert await lustre(driver).get_quota(ALPHA) is None


async def test_get_quota_and_usage_from_lfs_quota(driver: Driver, lfs: FakeLfs) -> None:
    make_tagged(driver, lfs, ALPHA, ALPHA_IDS[0])
    lfs.usage[ALPHA_IDS[0]] = (1024 * 1024, 12)
    lfs.limits[ALPHA_IDS[0]] = 2 * 1024 * 1024
    lfs.calls.clear()
    assert await lustre(driver).get_quota(ALPHA) == 2 * GIB
    assert await lustre(driver).usage_bytes(ALPHA) == GIB
    assert lfs.calls[-2:] == [listing(driver, ALPHA), quota_call(driver, ALPHA_IDS[0])]


async def test_over_quota_reads_as_it_is(driver: Driver, lfs: FakeLfs) -> None:
    make_tagged(driver, lfs, ALPHA, ALPHA_IDS[0])
    lfs.quota_output[ALPHA_IDS[0]] = OVER_QUOTA.replace("101", str(ALPHA_IDS[0]))
    assert await lustre(driver).get_quota(ALPHA) == 2048 * KIB
    assert await lustre(driver).usage_bytes(ALPHA) == 2052 * KIB


async def test_lustre_2_15_output(tmp_path: Path) -> None:
    lfs = FakeLfs(header="2.15")
    driver = ddn_driver(tmp_path / "volume", runner=lfs)
    await driver.initialize()
    await driver.create_vfolder(ALPHA)
    lfs.usage[ALPHA_IDS[0]] = (300, 2)
    await lustre(driver).set_quota(ALPHA, limit_bytes=GIB)
    assert await lustre(driver).get_quota(ALPHA) == GIB
    assert await lustre(driver).usage_bytes(ALPHA) == 300 * KIB


async def test_inaccurate_numbers_are_not_passed_on(driver: Driver, lfs: FakeLfs) -> None:
    make_tagged(driver, lfs, ALPHA, ALPHA_IDS[0])
    lfs.quota_output[ALPHA_IDS[0]] = INACCURATE.replace("101", str(ALPHA_IDS[0]))
    with pytest.raises(BackendUnavailable, match="inaccurate"):
        await lustre(driver).usage_bytes(ALPHA)
    with pytest.raises(BackendUnavailable, match="inaccurate"):
        await lustre(driver).get_quota(ALPHA)


async def test_an_untagged_vfolder_has_no_quota_and_no_fast_usage(
    driver: Driver, lfs: FakeLfs
) -> None:
    make_untagged(driver, ALPHA)
    assert await lustre(driver).get_quota(ALPHA) is None
    with pytest.raises(BackendUnavailable, match="not a Lustre project"):
        await lustre(driver).usage_bytes(ALPHA)


async def test_missing_vfolder_runs_nothing(driver: Driver, lfs: FakeLfs) -> None:
    lfs.calls.clear()
    with pytest.raises(VFolderDirectoryMissing):
        await lustre(driver).set_quota(ALPHA, limit_bytes=GIB)
    with pytest.raises(VFolderDirectoryMissing):
        await lustre(driver).usage_bytes(ALPHA)
    assert lfs.calls == []


async def test_a_failing_command_raises_the_driver_error(driver: Driver, lfs: FakeLfs) -> None:
    make_tagged(driver, lfs, ALPHA, ALPHA_IDS[0])
    lfs.failures["setquota"] = "lfs setquota: quotactl failed: Operation not permitted\n"
    with pytest.raises(BackendCommandFailed) as caught:
        await lustre(driver).set_quota(ALPHA, limit_bytes=GIB)
    assert isinstance(caught.value, BackendUnavailable)
    assert str(caught.value) == (
        "lfs exited with status 1: lfs setquota: quotactl failed: Operation not permitted"
    )
    assert caught.value.argv == setquota(driver, ALPHA_IDS[0], "1048576k")


# -- uploads ---------------------------------------------------------------------------


async def test_uploads_are_staged_inside_the_vfolders_project(driver: Driver) -> None:
    await driver.create_vfolder(ALPHA)
    staged = await driver.files.create_staged(ALPHA)
    staging_dir = driver.vfolder_path(ALPHA) / VFOLDER_STAGING_DIR
    assert (staging_dir / staged.file.name).is_file()
    inode = os.fstat(staged.file.fd).st_ino
    await staged.write([b"data"])
    await driver.files.commit_staged(
        staged, ALPHA, parse_relative_path("f.bin"), replace=True, parents=False
    )
    assert (driver.vfolder_path(ALPHA) / "f.bin").stat().st_ino == inode  # a rename
    assert list(staging_dir.iterdir()) == []


# -- configuration ---------------------------------------------------------------------


def test_advertises_quota_and_fast_usage(tmp_path: Path, lfs: FakeLfs) -> None:
    driver = ddn_driver(tmp_path, runner=lfs)
    assert isinstance(driver.quota, QuotaCapable) and isinstance(driver.usage, FastUsageCapable)
    assert capabilities_of(driver) == ["fast-usage", "quota"]
    assert driver.snapshots is None and driver.clone is None


async def test_options_name_the_binary_and_the_mount_point(tmp_path: Path) -> None:
    lfs = FakeLfs()
    driver = ddn_driver(
        tmp_path / "exa" / "vfroot",
        options={"lfs": "/usr/bin/lfs", "mount_point": str(tmp_path / "exa")},
        runner=lfs,
    )
    await driver.initialize()
    await driver.create_vfolder(ALPHA)
    await lustre(driver).set_quota(ALPHA, limit_bytes=GIB)
    resolved = str(await anyio.Path(tmp_path / "exa").resolve())
    assert all(call[0] == "/usr/bin/lfs" for call in lfs.calls)
    assert lfs.calls[-1][-1] == resolved


def test_registered_as_ddn_and_exascaler(tmp_path: Path) -> None:
    assert canonical_driver_name("exascaler") == "ddn"
    driver = build_driver("exascaler", root=tmp_path, options={"command_timeout": 5})
    assert driver.backend == "ddn" and isinstance(driver.quota, LustreProjectQuota)


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"project_id_first": 10, "project_id_last": 9}, "project_id_first"),
        ({"project_id_first": 0}, "project_id_first"),
        ({"project_id_last": 2**32 - 1}, "project_id_last"),
        ({"command_timeout": 0}, "command_timeout"),
        ({"lfs_path": "/usr/bin/lfs"}, "no option 'lfs_path'"),
    ],
)
def test_bad_options_are_refused(
    tmp_path: Path, options: dict[str, object], complaint: str
) -> None:
    with pytest.raises(InvalidDriverOptions, match=complaint):
        build_driver("ddn", root=tmp_path, options=options)


def test_a_root_outside_the_mount_point_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="not under mount point"):
        ddn_driver(tmp_path / "a", options={"mount_point": str(tmp_path / "b")})
