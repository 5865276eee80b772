"""``storage-proxy import-backendai``: from a Backend.AI storage-proxy to this one, in place.

Two steps, both read-only unless ``--apply``:

- the volumes: each ``[volume.<name>]`` of Backend.AI's TOML becomes a ``[volumes.<name>]``
  table of ours with the same path and ``layout = "backendai"``, so the data stays where it is;
- the vfolders: every directory in Backend.AI's layout on those volumes
  (``<quota scope hex>/<hex[0:2]>/<hex[2:4]>/<hex[4:]>``) becomes a vfolder row of ours with the
  folder's uuid as id, the quota scope as owner and ``bai-<hex>`` as name (the name the
  Manager-facing API gives the folders it creates), its usage ledger filled by the reconciler.

The quota scope's kind (user or project) is not in Backend.AI's path; it lives in the
Manager's database. So it comes from ``--scope-type`` (default ``user``), overridden per scope
by ``--scopes-file``, a JSON object mapping a scope's hex (or UUID) to ``"user"`` or
``"project"``. Idempotent: a folder already registered is left alone, so a second run adopts
nothing and changes nothing.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy.engine import make_url

from app.config import VOLUME_NAME_PATTERN, ConfigurationError, Settings, VolumeConfig
from app.db.engine import create_engine, create_session_factory, is_sqlite
from app.db.migrate import upgrade_to_head
from app.observability.metrics import Metrics
from app.quotas.ledger import QuotaLedger
from app.quotas.reconcile import Reconciler
from app.vfolders.models import OwnerType, VFolderRow, VFolderStatus
from app.vfolders.repository import DuplicateVFolder, VFolderRepository
from app.volumes.registry import VolumeRegistry
from drivers.layout import BACKENDAI, BackendAILayout

# Backend.AI's backend names and our drivers; every other backend has no driver here.
DRIVER_OF_BACKEND = {"vfs": "posix", "xfs": "xfs"}
SCOPE_KINDS = {"user": OwnerType.USER, "project": OwnerType.GROUP}
BACKENDAI_LAYOUT_VERSION = "3"  # <scope>/<hex[0:2]>/<hex[2:4]>/<hex[4:]>, since 23.03


@dataclass(frozen=True, slots=True)
class ImportedVolume:
    name: str
    driver: str
    path: Path


@dataclass(frozen=True, slots=True)
class FoundFolder:
    volume: str
    vfolder_id: uuid.UUID
    owner_type: OwnerType
    owner_id: str

    @property
    def name(self) -> str:
        return f"bai-{self.vfolder_id.hex}"

    @property
    def vfid(self) -> str:
        kind = "user" if self.owner_type is OwnerType.USER else "project"
        return f"{kind}:{self.owner_id}/{self.vfolder_id.hex}"


@dataclass(slots=True)
class ImportPlan:
    """What the import would do, or did: every line is also for the operator to read."""

    volumes: list[ImportedVolume] = field(default_factory=list)
    skipped_volumes: list[str] = field(default_factory=list)
    adopt: list[FoundFolder] = field(default_factory=list)
    already: list[FoundFolder] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    ignored_dirs: list[str] = field(default_factory=list)


def read_backendai_volumes(config: Path) -> tuple[list[ImportedVolume], list[str]]:
    """Backend.AI's ``[volume.<name>]`` tables: those we can serve, and why the others not."""
    try:
        raw = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read Backend.AI config {config}: {exc}") from exc
    tables = raw.get("volume")
    if not isinstance(tables, dict) or not tables:
        raise ConfigurationError(f"{config} defines no [volume.<name>] tables")
    volumes, skipped = [], []
    for name, table in tables.items():
        if not isinstance(table, dict):
            skipped.append(f"volume {name!r}: not a table")
            continue
        backend = str(table.get("backend", ""))
        if backend not in DRIVER_OF_BACKEND:
            skipped.append(
                f"volume {name!r}: backend {backend!r} has no driver here "
                f"(importable: {', '.join(sorted(DRIVER_OF_BACKEND))}); left out"
            )
            continue
        if "path" not in table:
            skipped.append(f"volume {name!r}: no path; left out")
            continue
        if not re.fullmatch(VOLUME_NAME_PATTERN, name):
            skipped.append(f"volume {name!r}: not a valid volume name here; left out")
            continue
        volumes.append(ImportedVolume(name, DRIVER_OF_BACKEND[backend], Path(table["path"])))
    return volumes, skipped


def layout_version_problem(volume: ImportedVolume) -> str | None:
    """Why the volume is not in the layout we serve (Backend.AI's version 3, which it notes
    in ``version.txt`` at the volume root), or None."""
    try:
        version = (volume.path / "version.txt").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None  # an empty volume, or one made before Backend.AI wrote the file
    except OSError as exc:
        return f"volume {volume.name!r}: cannot read its version.txt: {exc}; left out"
    if version == BACKENDAI_LAYOUT_VERSION:
        return None
    return (
        f"volume {volume.name!r}: Backend.AI vfolder layout version {version!r}, only "
        f"{BACKENDAI_LAYOUT_VERSION} is served here; left out"
    )


def render_volumes_toml(volumes: list[ImportedVolume], *, source: Path) -> str:
    """Our ``STORAGE_CONFIG`` for the volumes (JSON strings are valid TOML basic strings)."""
    lines = [f"# Made by `storage-proxy import-backendai` from {source}", ""]
    for volume in volumes:
        lines += [
            f"[volumes.{json.dumps(volume.name)}]",
            f"driver = {json.dumps(volume.driver)}",
            f"path = {json.dumps(str(volume.path))}",
            f'options = {{ layout = "{BACKENDAI}" }}',
            "",
        ]
    return "\n".join(lines)


def volume_configs(volumes: list[ImportedVolume]) -> dict[str, VolumeConfig]:
    return {
        v.name: VolumeConfig(driver=v.driver, path=v.path, options={"layout": BACKENDAI})
        for v in volumes
    }


def read_scope_kinds(path: Path | None) -> dict[uuid.UUID, OwnerType]:
    if path is None:
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read scopes file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{path}: not a JSON object of scope → 'user' | 'project'")
    kinds = {}
    for scope, kind in raw.items():
        try:
            scope_uuid = uuid.UUID(str(scope))
        except ValueError:
            raise ConfigurationError(f"{path}: {scope!r} is not a scope UUID") from None
        if kind not in SCOPE_KINDS:
            raise ConfigurationError(f"{path}: scope {scope}: {kind!r} is not user or project")
        kinds[scope_uuid] = SCOPE_KINDS[kind]
    return kinds


def find_folders(
    volume: ImportedVolume,
    *,
    default_kind: OwnerType,
    scope_kinds: Mapping[uuid.UUID, OwnerType],
    ignored: list[str],
) -> list[FoundFolder]:
    """Every vfolder directory on the volume in Backend.AI's layout (blocking; reads only)."""
    layout = BackendAILayout(volume.path)
    found = []
    for vfolder_id in layout.vfolder_ids():
        scope = layout.scope_of(vfolder_id)
        try:
            scope_uuid = uuid.UUID(hex=scope or "")
        except ValueError:
            ignored.append(f"{volume.name}: {scope}/…/{vfolder_id.hex}: scope is not a UUID")
            continue
        kind = scope_kinds.get(scope_uuid, default_kind)
        found.append(FoundFolder(volume.name, vfolder_id, kind, str(scope_uuid)))
    return found


async def plan_and_apply(
    settings: Settings,
    plan: ImportPlan,
    found: list[FoundFolder],
    *,
    apply: bool,
) -> None:
    """Sort the found folders into new, already registered and conflicting; with ``apply``,
    register the new ones and fill their ledgers from the disk."""
    url = settings.effective_database_url
    if not apply and is_sqlite(url) and not _sqlite_file_exists(url):
        plan.adopt.extend(found)  # no database yet: everything is new, and a dry run makes none
        return
    engine = create_engine(url, pool_size=1)
    try:
        if apply and settings.uses_embedded_database:
            await upgrade_to_head(engine)  # as `serve` does on the embedded database
        sessions = create_session_factory(engine)
        async with sessions() as session:
            repository = VFolderRepository(session)
            for folder in found:
                await _classify(repository, plan, folder)
        if not apply or not plan.adopt:
            return
        async with sessions() as session, session.begin():
            repository = VFolderRepository(session)
            for folder in plan.adopt:
                await _register(repository, folder)
        volumes = VolumeRegistry.from_config(volume_configs(plan.volumes))
        metrics = Metrics()
        reconciler = Reconciler(
            sessions=sessions,
            volumes=volumes,
            ledger=QuotaLedger(sessions, metrics),
            metrics=metrics,
        )
        for folder in plan.adopt:
            await reconciler.vfolder(folder.vfolder_id)
    finally:
        await engine.dispose()


async def _classify(repository: VFolderRepository, plan: ImportPlan, folder: FoundFolder) -> None:
    row = await repository.get(folder.vfolder_id)
    if row is not None:
        if row.volume == folder.volume and row.status != VFolderStatus.DELETED.value:
            plan.already.append(folder)
        else:
            plan.conflicts.append(
                f"{folder.volume}: {folder.vfid}: its id is registered already "
                f"({row.status} on volume {row.volume!r}); left alone"
            )
        return
    taken = await repository.get_live_by_name(
        owner_type=folder.owner_type, owner_id=folder.owner_id, name=folder.name
    )
    if taken is not None:
        plan.conflicts.append(
            f"{folder.volume}: {folder.vfid}: {folder.owner_type} {folder.owner_id} already "
            f"has a vfolder named {folder.name!r} ({taken.id}); left alone"
        )
        return
    plan.adopt.append(folder)


async def _register(repository: VFolderRepository, folder: FoundFolder) -> None:
    try:
        await repository.add(
            VFolderRow(
                id=folder.vfolder_id,
                name=folder.name,
                volume=folder.volume,
                owner_type=folder.owner_type.value,
                owner_id=folder.owner_id,
                status=VFolderStatus.READY.value,
            )
        )
    except DuplicateVFolder as exc:
        raise ConfigurationError(
            f"{folder.vfid} was registered by someone else meanwhile; run the import again"
        ) from exc


def _sqlite_file_exists(url: str) -> bool:
    database = make_url(url).database
    return bool(database) and database != ":memory:" and Path(str(database)).exists()


def run_import(
    settings: Settings,
    config: Path,
    *,
    apply: bool,
    default_kind: OwnerType = OwnerType.USER,
    scopes_file: Path | None = None,
) -> ImportPlan:
    volumes, skipped = read_backendai_volumes(config)
    plan = ImportPlan(skipped_volumes=skipped)
    for volume in volumes:
        problem = layout_version_problem(volume)
        if problem is None:
            plan.volumes.append(volume)
        else:
            plan.skipped_volumes.append(problem)
    scope_kinds = read_scope_kinds(scopes_file)
    found: list[FoundFolder] = []
    for volume in plan.volumes:
        found += find_folders(
            volume, default_kind=default_kind, scope_kinds=scope_kinds, ignored=plan.ignored_dirs
        )
    anyio.run(functools.partial(plan_and_apply, settings, plan, found, apply=apply))
    return plan


def describe(plan: ImportPlan, *, apply: bool) -> list[str]:
    """The report, one line per fact."""
    verb = "adopted" if apply else "would adopt"
    lines = [f"skipped {line}" for line in plan.skipped_volumes]
    lines += [f"{verb} {f.volume}: {f.vfid} as {f.name!r}" for f in plan.adopt]
    lines += [f"already registered {f.volume}: {f.vfid}" for f in plan.already]
    lines += [f"conflict {line}" for line in plan.conflicts]
    lines += [f"ignored {line}" for line in plan.ignored_dirs]
    summary = (
        f"{verb} {len(plan.adopt)} vfolder(s); {len(plan.already)} already registered; "
        f"{len(plan.conflicts)} conflict(s)"
    )
    if not apply:
        summary += " (dry run: nothing changed; --apply to do it)"
    return [*lines, summary]


def extra_options_note(config: Path) -> list[str]:
    """Backend.AI options we do not carry over, named so the operator can check them."""
    raw: dict[str, Any] = tomllib.loads(config.read_text(encoding="utf-8"))
    notes = []
    for name, table in (raw.get("volume") or {}).items():
        if isinstance(table, dict):
            extra = sorted(set(table) - {"backend", "path"})
            if extra:
                notes.append(f"volume {name!r}: not carried over: {', '.join(extra)}")
    return notes
