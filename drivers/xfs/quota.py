"""XFS project quotas as a quota and usage strategy: every vfolder is an XFS project, so the
kernel enforces its byte limit and keeps its usage without walking its files.

The quota work goes through xfsprogs' tools, run by an injectable ``CommandRunner``:

- ``xfs_quota -x -c 'state -p' <mount>`` on start: project quota must be accounted *and*
  enforced, or the ``quota`` capability would be a lie;
- ``xfs_io -r -c lsproj <vfolder>``: the project id the vfolder's directory carries;
- ``xfs_quota -x -c 'report -p -b -n -N' <mount>``: used blocks and limits of every project;
- ``xfs_quota -x -c 'project -s -p <vfolder> <id>' <mount>``: puts the whole tree in project
  ``id`` and sets the inherit flag, so whatever is created inside later belongs to it too;
- ``xfs_quota -x -c 'limit -p bhard=<bytes> <id>' <mount>``: the hard limit, 0 for none.

Options of the ``xfs`` backend (``[volumes.<name>.options]``), besides the POSIX ones:

- ``xfs_quota``, ``xfs_io``: the binaries (default: found on ``PATH``);
- ``mount_point``: where the filesystem is mounted, which xfs_quota wants exactly, not any
  directory on it (default: the volume root);
- ``command_timeout``: seconds one tool run may take (default 60). Setting a quota walks the
  vfolder's tree, so a volume with huge vfolders may need more.

The filesystem needs 32-bit project ids (``projid32bit``, the default of every XFS v5
filesystem): the ids used here go up to 2**32 - 2.

XFS itself refuses (EXDEV) a rename or hard link into a tree of another project, or files
could dodge its quota. So uploads are staged inside the vfolder's own tree, in its hidden
staging directory (``drivers.staging.VFolderStaging``), already in the vfolder's project: the
commit is one rename within the project, and an upload in progress counts against the
vfolder's limit while it is written. XFS also rounds limits up to its block size.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import anyio
from anyio import to_thread

from drivers.commands import CommandResult, CommandRunner
from drivers.errors import BackendCommandFailed, BackendUnavailable, VFolderDirectoryMissing
from drivers.layout import VFolderLayout

KIB = 1024
PROJECT_ID_FIRST = 1  # 0 is the default project: every inode nobody tagged is in it
PROJECT_ID_LAST = 2**32 - 2  # 2**32 - 1 is (prid_t)-1, which xfsprogs reads as "no project"
PROJECT_ID_PROBES = 8

_LSPROJ = re.compile(r"^projid = (\d+)\s*$", re.MULTILINE)
_ACCOUNTING_ON = re.compile(r"^\s*Accounting:\s*ON\s*$", re.MULTILINE)
_ENFORCEMENT_ON = re.compile(r"^\s*Enforcement:\s*ON\s*$", re.MULTILINE)
# xfs_quota splits its -c command on blanks and knows no escaping on every version.
_UNSAFE_IN_COMMAND = re.compile(r"[\s'\"\\]")


def project_id_candidates(vfolder_id: UUID) -> tuple[int, ...]:
    """The project ids a vfolder may get, best first.

    A vfolder's project id is not stored anywhere but on its directory: it is the first of
    these candidates that no other project used when the directory was tagged, and
    ``lsproj`` reads it back. Why not just one hash: 32 bits are few. Two of n vfolders on a
    volume share a hash with probability about 1 - exp(-n²/2³³) — 1 % at 10 000 vfolders,
    two in three at 100 000 — and two vfolders in one project share one limit and one usage.
    So the driver skips every candidate the quota report already lists (a tagged tree, or a
    limit left behind). Why not a mapping file (``projects.json``): the directory's own
    project id already is the mapping, one that moves with the directory through the trash
    and back, cannot go out of step with the filesystem and needs no lock across processes.
    An id that is not one of the vfolder's own candidates (inherited from a parent an
    administrator tagged) is never taken for the vfolder's.

    Derived with BLAKE2b, not ``hash()``: ids live on disk, so they must be the same on every
    process, node and Python version.
    """
    span = PROJECT_ID_LAST - PROJECT_ID_FIRST + 1
    return tuple(
        PROJECT_ID_FIRST + _digest64(vfolder_id, attempt) % span
        for attempt in range(PROJECT_ID_PROBES)
    )


def _digest64(vfolder_id: UUID, attempt: int) -> int:
    digest = hashlib.blake2b(vfolder_id.bytes + bytes([attempt]), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True, slots=True)
class ProjectQuota:
    used_bytes: int
    hard_limit_bytes: int  # 0: no limit


def parse_project_report(text: str) -> dict[int, ProjectQuota]:
    """``report -p -b -n -N`` output by project id.

    Each project is one line, ``#<id> <used> <soft> <hard> <warnings> [<grace>]``, the
    amounts in KiB; the grace column may hold blanks (``[6 days]``). Blank lines, and headers
    should a version print them despite ``-N``, are skipped.
    """
    projects: dict[int, ProjectQuota] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields or not fields[0].startswith("#"):
            continue
        try:
            project_id = int(fields[0][1:])
            used_kib, _soft_kib, hard_kib = (int(field) for field in fields[1:4])
        except ValueError as exc:
            raise BackendCommandFailed(
                f"unexpected line in the xfs_quota report: {line.strip()!r}"
            ) from exc
        projects[project_id] = ProjectQuota(used_kib * KIB, hard_kib * KIB)
    return projects


def parse_lsproj(text: str) -> int:
    match = _LSPROJ.search(text)
    if match is None:
        raise BackendCommandFailed(f"unexpected xfs_io lsproj output: {text.strip()!r}")
    return int(match.group(1))


def project_quota_enforced(state_text: str) -> bool:
    return bool(_ACCOUNTING_ON.search(state_text) and _ENFORCEMENT_ON.search(state_text))


def hard_limit_argument(limit_bytes: int | None) -> int:
    """The ``bhard=`` value for a limit; ``None`` (no limit) is 0 to XFS.

    Whole KiB, at least one: xfs_quota silently turns a limit under 512 bytes into 0, which
    would lift the limit altogether, and the report counts whole KiB, so a limit reads back
    as it was set (XFS itself still enforces whole filesystem blocks).
    """
    if limit_bytes is None:
        return 0
    if limit_bytes < 0:
        raise ValueError(f"a quota limit cannot be negative: {limit_bytes}")
    return max(1, -(-limit_bytes // KIB)) * KIB


class XfsProjectQuota:
    """``QuotaCapable`` and ``FastUsageCapable`` through XFS project quotas: every vfolder is
    tagged with its own project when it is made (``vfolder_created``)."""

    def __init__(
        self,
        layout: VFolderLayout,
        *,
        mount_point: Path,
        runner: CommandRunner,
        xfs_quota: str = "xfs_quota",
        xfs_io: str = "xfs_io",
    ) -> None:
        self.layout = layout
        self.mount_point = mount_point
        _check_volume_root(layout.root, mount_point)
        self._xfs_quota = xfs_quota
        self._xfs_io = xfs_io
        self._runner = runner
        # Choosing a free id and tagging with it is one step, or two vfolders could pick one.
        self._assigning = anyio.Lock()

    async def initialize(self) -> None:
        state = await self._quota_command("state -p")
        if not project_quota_enforced(state.stdout):
            raise BackendUnavailable(
                f"project quotas are not accounted and enforced on {self.mount_point}; "
                "mount it with the prjquota option"
            )

    async def vfolder_created(self, vfolder_id: UUID) -> None:
        # Tagged while still empty, the tagging is instant and no byte is ever left uncounted.
        await self._ensure_project(vfolder_id)

    async def set_quota(self, vfolder_id: UUID, *, limit_bytes: int | None) -> None:
        bhard = hard_limit_argument(limit_bytes)
        project_id, just_tagged = await self._ensure_project(vfolder_id)
        if not just_tagged:
            # Over the whole tree again: this completes a tagging cut short (a timeout on a
            # large vfolder made before the volume was XFS-managed), or nothing changes.
            await self._tag(vfolder_id, project_id)
        await self._quota_command(f"limit -p bhard={bhard} {project_id}")

    async def get_quota(self, vfolder_id: UUID) -> int | None:
        project_id = await self._own_project(vfolder_id)
        if project_id is None:
            return None
        quota = (await self._report()).get(project_id)
        return quota.hard_limit_bytes if quota is not None and quota.hard_limit_bytes else None

    async def usage_bytes(self, vfolder_id: UUID) -> int:
        project_id = await self._own_project(vfolder_id)
        if project_id is None:
            # 0 would be a lie the quota ledger believes; the caller can measure instead.
            raise BackendUnavailable(
                f"vfolder {vfolder_id} is not an XFS project yet (made before the volume "
                "was XFS-managed?); setting a quota on it makes it one"
            )
        quota = (await self._report()).get(project_id)
        return quota.used_bytes if quota is not None else 0

    async def _ensure_project(self, vfolder_id: UUID) -> tuple[int, bool]:
        """The vfolder's project id, and whether its tree was tagged with it just now."""
        async with self._assigning:
            current = await self._own_project(vfolder_id)
            if current is not None:
                return current, False
            project_id = _first_free(vfolder_id, taken=(await self._report()).keys())
            await self._tag(vfolder_id, project_id)
            return project_id, True

    async def _own_project(self, vfolder_id: UUID) -> int | None:
        path = await self._existing_vfolder_path(vfolder_id)
        result = await self._run([self._xfs_io, "-r", "-c", "lsproj", str(path)])
        project_id = parse_lsproj(result.stdout)
        return project_id if project_id in project_id_candidates(vfolder_id) else None

    async def _tag(self, vfolder_id: UUID, project_id: int) -> None:
        path = await self._existing_vfolder_path(vfolder_id)
        await self._quota_command(f"project -s -p {path} {project_id}")

    async def _report(self) -> dict[int, ProjectQuota]:
        result = await self._quota_command("report -p -b -n -N")
        return parse_project_report(result.stdout)

    async def _existing_vfolder_path(self, vfolder_id: UUID) -> Path:
        # xfs_quota walks a missing path silently and reports success.
        path = await to_thread.run_sync(self.layout.vfolder_path, vfolder_id)
        if not await to_thread.run_sync(path.is_dir):
            raise VFolderDirectoryMissing(str(vfolder_id))
        return path

    async def _quota_command(self, command: str) -> CommandResult:
        return await self._run([self._xfs_quota, "-x", "-c", command, str(self.mount_point)])

    async def _run(self, argv: Sequence[str]) -> CommandResult:
        # Checked here too: a runner may hand back a failed result instead of raising.
        return (await self._runner.run(argv)).check()


def _first_free(vfolder_id: UUID, *, taken: Collection[int]) -> int:
    for project_id in project_id_candidates(vfolder_id):
        if project_id not in taken:
            return project_id
    raise BackendUnavailable(
        f"no free XFS project id for vfolder {vfolder_id}: "
        f"all {PROJECT_ID_PROBES} of its candidates are in use"
    )


def _check_volume_root(root: Path, mount_point: Path) -> None:
    if not root.is_relative_to(mount_point):
        raise BackendUnavailable(f"volume root {root} is not under mount point {mount_point}")
    if _UNSAFE_IN_COMMAND.search(str(root)):
        raise BackendUnavailable(
            f"volume root {str(root)!r} has blanks, quotes or backslashes, which xfs_quota "
            "commands cannot carry"
        )
