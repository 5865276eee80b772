"""Lustre project quotas (DDN EXAScaler) as a quota and usage strategy: every vfolder is a
Lustre project, so the filesystem enforces its byte limit and keeps its usage without walking
its files.

There is no management API: the work goes through Lustre's ``lfs`` tool, run by an
injectable ``CommandRunner`` (argv, never a shell):

- ``lfs project -d <vfolder>``: the project id the vfolder's directory carries
  (``"%5u %c %s"``: id, ``P`` when the inherit flag is set, path);
- ``lfs project -p <id> -r -s <vfolder>``: the whole tree into project ``id``, with the
  inherit flag, so whatever is created inside later belongs to it too;
- ``lfs quota -p <id> <mount>``: the project's usage and limits, in KiB;
- ``lfs setquota -p <id> -B <kib>k <mount>``: its hard block limit, ``-B 0`` for none.

Where a vfolder's project id lives: on its directory, and nowhere else that could go out of
step. Backend.AI's driver keeps it in a ``project_id`` file inside the quota scope (which
then breaks ``rmdir``) and takes it from a shared counter read and written back without a
transaction (two workers can get one id). Here the id is chosen from a few candidates hashed
from the vfolder id (``project_id_candidates``), and the first that is free is taken:

- free means no other vfolder claimed it and ``lfs quota`` shows nothing in it (no bytes, no
  files, no limit: an administrator's project is never taken);
- the claim is a file named after the id in the volume's private staging area
  (``.staging/lustre-project-ids/<id>``), made with ``O_CREAT | O_EXCL``: the Lustre MDS
  makes that create atomic across every client node, so two proxies can never claim one id.
  It holds the vfolder's id, so a proxy that died between claiming and tagging finds its own
  claim again. Within one process an ``anyio.Lock`` serialises the choice as well.

``lfs project -d`` reads the id back; an id that is not one of the vfolder's own candidates
(inherited from a parent an administrator tagged) is never taken for the vfolder's. Claims
of purged vfolders stay behind; they only keep an id from being handed out again.

Uploads are staged inside the vfolder's tree (``drivers.staging.VFolderStaging``), already in
its project: the commit is one rename within the project, and an upload in progress counts
against the vfolder's limit while it is written.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import anyio
from anyio import to_thread

from drivers.commands import CommandResult, CommandRunner
from drivers.errors import BackendCommandFailed, BackendUnavailable, VFolderDirectoryMissing
from drivers.layout import VFolderLayout

KIB = 1024
PROJECT_ID_FIRST = 1_000_000  # below: what sites number their own projects with
PROJECT_ID_LAST = 2**32 - 2  # 2**32 - 1 is (__u32)-1, "no project" to the tools
PROJECT_ID_PROBES = 8
CLAIMS_DIR = "lustre-project-ids"

# `lfs project -d`: printf("%5u %c %s\n", projid, inherit ? 'P' : '-', path)
_PROJECT_LINE = re.compile(r"^\s*(\d+)\s+([P-])\s+(\S.*)$", re.MULTILINE)
# The title of `lfs quota`: "Disk quotas for prj 101 (pid 101):" (older: "project")
_QUOTA_TITLE = re.compile(r"^Disk quotas for \S+ \S+ \(pid (\d+)\):", re.MULTILINE)
# Column names of the header: before Lustre 2.15 "kbytes quota limit grace files quota limit
# grace", since "kbytes bquota blimit bgrace files iquota ilimit igrace"; "used" with -h.
_USED_COLUMNS = ("kbytes", "used")
_LIMIT_COLUMNS = ("limit", "blimit")
_FILES_COLUMNS = ("files",)
# Without a header (`-q`): kbytes quota limit grace files …
_DEFAULT_COLUMNS = (0, 2, 4)


def project_id_candidates(
    vfolder_id: UUID, *, first: int = PROJECT_ID_FIRST, last: int = PROJECT_ID_LAST
) -> tuple[int, ...]:
    """The project ids a vfolder may get, best first, all in ``first..last`` and distinct
    where the range allows. Derived with BLAKE2b: the same on every node and release."""
    if not 1 <= first <= last <= PROJECT_ID_LAST:
        raise ValueError(f"bad project id range {first}..{last}")
    span = last - first + 1
    candidates: list[int] = []
    for attempt in range(PROJECT_ID_PROBES * 4):
        digest = hashlib.blake2b(
            b"lustre" + vfolder_id.bytes + bytes([attempt]), digest_size=8
        ).digest()
        candidate = first + int.from_bytes(digest, "big") % span
        if candidate not in candidates:
            candidates.append(candidate)
        if len(candidates) == PROJECT_ID_PROBES:
            break
    return tuple(candidates)


@dataclass(frozen=True, slots=True)
class LustreQuota:
    project_id: int
    used_bytes: int
    limit_bytes: int  # 0: no limit
    files: int
    # False where lfs put a value in brackets: some OST or MDT did not answer, the numbers
    # are a lower bound.
    accurate: bool = True

    @property
    def in_use(self) -> bool:
        return bool(self.used_bytes or self.limit_bytes or self.files)


def parse_project_listing(text: str) -> int:
    """The project id from ``lfs project -d <dir>``."""
    match = _PROJECT_LINE.search(text)
    if match is None:
        raise BackendCommandFailed(f"unexpected lfs project output: {text.strip()[:200]!r}")
    return int(match.group(1))


def parse_quota(text: str, project_id: int) -> LustreQuota:
    """``lfs quota -p <id> <path>`` output, as every Lustre release since 2.10 prints it:

    - a title ``Disk quotas for prj <id> (pid <id>):`` (checked against ``project_id``);
    - a header naming the columns (two variants, see ``_LIMIT_COLUMNS``), absent with -q;
    - the filesystem's line: the path, then ``kbytes quota limit grace files quota limit
      grace``. A path longer than 15 characters is alone on its line and the numbers follow
      on the next. ``*`` right after a number means over quota (stripped); a number in
      ``[]`` is inaccurate (some target did not answer).
    """
    title = _QUOTA_TITLE.search(text)
    if title is not None and int(title.group(1)) != project_id:
        raise BackendCommandFailed(
            f"lfs quota answered for project {title.group(1)}, not {project_id}"
        )
    columns = _DEFAULT_COLUMNS
    data: list[str] | None = None
    lines = iter(text.splitlines())
    for line in lines:
        fields = line.split()
        if not fields or line.startswith(("Disk quotas for", "Disk default")):
            continue
        if fields[0] == "Filesystem":
            columns = _header_columns(fields[1:], line)
            continue
        if not fields[0].startswith("/"):
            continue  # "Some errors happened…", "Block grace time…"
        if len(fields) == 1:  # a long path: the numbers are on the next line
            fields = [fields[0], *next(lines, "").split()]
        data = fields[1:]
        break
    if data is None or len(data) <= max(columns):
        raise BackendCommandFailed(f"unexpected lfs quota output: {text.strip()[:300]!r}")
    used, used_ok = _number(data[columns[0]], text)
    limit, limit_ok = _number(data[columns[1]], text)
    files, files_ok = _number(data[columns[2]], text)
    return LustreQuota(
        project_id=project_id,
        used_bytes=used * KIB,
        limit_bytes=limit * KIB,
        files=files,
        accurate=used_ok and limit_ok and files_ok,
    )


def _header_columns(names: list[str], line: str) -> tuple[int, int, int]:
    try:
        return (
            next(i for i, name in enumerate(names) if name in _USED_COLUMNS),
            next(i for i, name in enumerate(names) if name in _LIMIT_COLUMNS),
            next(i for i, name in enumerate(names) if name in _FILES_COLUMNS),
        )
    except StopIteration:
        raise BackendCommandFailed(f"unexpected lfs quota header: {line.strip()!r}") from None


def _number(field: str, text: str) -> tuple[int, bool]:
    """A column's value and whether it is accurate: ``1004``, ``1004*`` (over quota; lfs
    may print two stars), ``[1004]`` (inaccurate)."""
    value = field.rstrip("*")
    accurate = not (value.startswith("[") and value.endswith("]"))
    if not accurate:
        value = value[1:-1]
    if not value.isascii() or not value.isdigit():
        raise BackendCommandFailed(
            f"unexpected value {field!r} in lfs quota output: {text.strip()[:300]!r}"
        )
    return int(value), accurate


def block_limit_argument(limit_bytes: int | None) -> str:
    """The ``-B`` value for a limit: whole KiB with the ``k`` suffix, at least 1 KiB (0
    would lift the limit), ``0`` for none."""
    if limit_bytes is None:
        return "0"
    if limit_bytes < 0:
        raise ValueError(f"a quota limit cannot be negative: {limit_bytes}")
    return f"{max(1, -(-limit_bytes // KIB))}k"


class LustreProjectQuota:
    """``QuotaCapable`` and ``FastUsageCapable`` through Lustre project quotas: every vfolder
    is tagged with its own project when it is made (``vfolder_created``)."""

    def __init__(
        self,
        layout: VFolderLayout,
        *,
        mount_point: Path,
        runner: CommandRunner,
        lfs: str = "lfs",
        project_id_first: int = PROJECT_ID_FIRST,
        project_id_last: int = PROJECT_ID_LAST,
    ) -> None:
        if not layout.root.is_relative_to(mount_point):
            raise BackendUnavailable(
                f"volume root {layout.root} is not under mount point {mount_point}"
            )
        project_id_candidates(UUID(int=0), first=project_id_first, last=project_id_last)
        self.layout = layout
        self.mount_point = mount_point
        self.project_id_first = project_id_first
        self.project_id_last = project_id_last
        self._lfs = lfs
        self._runner = runner
        self._assigning = anyio.Lock()

    @property
    def claims(self) -> Path:
        return self.layout.staging / CLAIMS_DIR

    def candidates(self, vfolder_id: UUID) -> tuple[int, ...]:
        return project_id_candidates(
            vfolder_id, first=self.project_id_first, last=self.project_id_last
        )

    async def vfolder_created(self, vfolder_id: UUID) -> None:
        # Tagged while still empty, the tagging is instant and no byte is ever left uncounted.
        await self._ensure_project(vfolder_id)

    async def set_quota(self, vfolder_id: UUID, *, limit_bytes: int | None) -> None:
        limit = block_limit_argument(limit_bytes)
        project_id, just_tagged = await self._ensure_project(vfolder_id)
        if not just_tagged:
            # Over the whole tree again: completes a tagging cut short (a timeout on a large
            # vfolder made before the volume was Lustre-managed), or changes nothing.
            await self._tag(vfolder_id, project_id)
        await self._lfs_run("setquota", "-p", str(project_id), "-B", limit, str(self.mount_point))

    async def get_quota(self, vfolder_id: UUID) -> int | None:
        project_id = await self._own_project(vfolder_id)
        if project_id is None:
            return None
        quota = await self._accurate_quota(project_id)
        return quota.limit_bytes or None

    async def usage_bytes(self, vfolder_id: UUID) -> int:
        project_id = await self._own_project(vfolder_id)
        if project_id is None:
            # 0 would be a lie the quota ledger believes; the caller can measure instead.
            raise BackendUnavailable(
                f"vfolder {vfolder_id} is not a Lustre project yet (made before the volume "
                "was Lustre-managed?); setting a quota on it makes it one"
            )
        return (await self._accurate_quota(project_id)).used_bytes

    async def quota(self, project_id: int) -> LustreQuota:
        result = await self._lfs_run("quota", "-p", str(project_id), str(self.mount_point))
        return parse_quota(result.stdout, project_id)

    async def _accurate_quota(self, project_id: int) -> LustreQuota:
        quota = await self.quota(project_id)
        if not quota.accurate:
            raise BackendUnavailable(
                f"lfs quota for project {project_id} is inaccurate: some Lustre targets did "
                "not answer"
            )
        return quota

    async def _ensure_project(self, vfolder_id: UUID) -> tuple[int, bool]:
        """The vfolder's project id, and whether its tree was tagged with it just now."""
        async with self._assigning:
            current = await self._own_project(vfolder_id)
            if current is not None:
                return current, False
            for candidate in self.candidates(vfolder_id):
                if await self._claim(candidate, vfolder_id):
                    await self._tag(vfolder_id, candidate)
                    return candidate, True
        raise BackendUnavailable(
            f"no free Lustre project id for vfolder {vfolder_id}: all "
            f"{PROJECT_ID_PROBES} of its candidates are in use"
        )

    async def _claim(self, project_id: int, vfolder_id: UUID) -> bool:
        """Whether ``project_id`` is now the vfolder's to tag with (see the module doc)."""
        owner = await to_thread.run_sync(self._claim_owner, project_id)
        if owner is not None:
            return owner == vfolder_id
        if (await self.quota(project_id)).in_use:
            return False
        return await to_thread.run_sync(self._claim_sync, project_id, vfolder_id)

    def _claim_owner(self, project_id: int) -> UUID | None:
        try:
            text = (self.claims / str(project_id)).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise BackendUnavailable(f"cannot read project id claim {project_id}: {exc}") from exc
        try:
            return UUID(hex=text)
        except ValueError:
            # Half-written by a claimant that died: taken, never reused for safety.
            return UUID(int=0)

    def _claim_sync(self, project_id: int, vfolder_id: UUID) -> bool:
        try:
            self.claims.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(
                self.claims / str(project_id),
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
        except FileExistsError:
            return self._claim_owner(project_id) == vfolder_id
        except OSError as exc:
            raise BackendUnavailable(f"cannot claim project id {project_id}: {exc}") from exc
        try:
            os.write(fd, vfolder_id.hex.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    async def _own_project(self, vfolder_id: UUID) -> int | None:
        path = await self._existing_vfolder_path(vfolder_id)
        result = await self._lfs_run("project", "-d", str(path))
        project_id = parse_project_listing(result.stdout)
        return project_id if project_id in self.candidates(vfolder_id) else None

    async def _tag(self, vfolder_id: UUID, project_id: int) -> None:
        path = await self._existing_vfolder_path(vfolder_id)
        await self._lfs_run("project", "-p", str(project_id), "-r", "-s", str(path))

    async def _existing_vfolder_path(self, vfolder_id: UUID) -> Path:
        path = await to_thread.run_sync(self.layout.vfolder_path, vfolder_id)
        if not await to_thread.run_sync(path.is_dir):
            raise VFolderDirectoryMissing(str(vfolder_id))
        return path

    async def _lfs_run(self, *args: str) -> CommandResult:
        return await self._run([self._lfs, *args])

    async def _run(self, argv: Sequence[str]) -> CommandResult:
        # Checked here too: a runner may hand back a failed result instead of raising.
        return (await self._runner.run(argv)).check()
