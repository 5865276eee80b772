"""Where things live on a volume: the vfolder tree and the proxy's own areas.

Two layouts, one small protocol (``VFolderLayout``), chosen per volume by the driver option
``layout``:

- ``sharded`` (the default): ``<root>/<hex[0:2]>/<hex[2:4]>/<hex>``, a path computed from the
  vfolder id alone;
- ``backendai``: Backend.AI's vfolder layout version 3,
  ``<root>/<quota scope>/<hex[0:2]>/<hex[2:4]>/<hex[4:]>``, so a volume Backend.AI filled is
  served where it is. The path depends on the owner, which only ``place`` is told; every other
  caller passes the id alone, so the layout keeps an in-memory index id → scope directory,
  filled by a scan (``load``), by ``place``, and on a miss by looking for the id under every
  scope directory (a vfolder another node created).

Both keep ``.staging`` and ``.trash`` at the volume root, on the same filesystem, so finishing
an upload or deleting a vfolder is one rename and no container mounting a vfolder can see them.
(A driver whose quota boundary is the vfolder stages uploads inside it instead:
``drivers.staging``.)
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import quote
from uuid import UUID

from drivers.types import VFolderOwner

STAGING_DIR = ".staging"
TRASH_DIR = ".trash"
FILES_MARK = "files-"
HEX_DIGITS = frozenset("0123456789abcdef")
# Where an id no scope directory holds "is": a name no scan treats as a scope (it starts with a
# dot) and nothing creates, so every operation on it finds nothing.
UNPLACED_DIR = ".unplaced"
# A scope directory name, a dot, an 8-hex suffix and a 32-hex id must fit NAME_MAX (255) in a
# trash name; a longer encoded owner id is replaced by its digest.
MAX_SCOPE_NAME = 200

SHARDED = "sharded"
BACKENDAI = "backendai"
LAYOUTS = (SHARDED, BACKENDAI)


class LayoutError(Exception):
    """The layout cannot place a vfolder (no owner given where the path depends on it)."""


class VFolderLayout(Protocol):
    """Contract: ``vfolder_path`` is sync and cheap for a known id, and returns a path where
    nothing exists for an unknown one (never raises); ``vfolder_ids`` walks the disk."""

    @property
    def root(self) -> Path: ...

    @property
    def staging(self) -> Path: ...

    @property
    def trash(self) -> Path: ...

    def vfolder_path(self, vfolder_id: UUID) -> Path: ...

    def place(self, vfolder_id: UUID, owner: VFolderOwner | None) -> Path:
        """The path a new vfolder of ``owner`` gets, remembered for ``vfolder_path``; raises
        ``LayoutError`` when the layout needs an owner and none is given."""
        ...

    def load(self) -> None:
        """Learn what is on disk (blocking); called when the volume starts."""
        ...

    def vfolder_ids(self) -> Iterator[UUID]:
        """Every vfolder directory present on the volume (blocking)."""
        ...

    def new_trash_name(self, vfolder_id: UUID) -> str: ...

    def new_file_trash_name(self, vfolder_id: UUID) -> str: ...

    def parse_trash_name(self, name: str) -> tuple[UUID, bool] | None: ...

    def restore_path(self, trash_name: str, vfolder_id: UUID) -> Path:
        """Where the vfolder trashed under ``trash_name`` goes back to."""
        ...


def build_layout(name: str, root: Path) -> VFolderLayout:
    if name == SHARDED:
        return VolumeLayout(root)
    if name == BACKENDAI:
        return BackendAILayout(root)
    raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {name!r}")


def _file_trash_name(vfolder_id: UUID) -> str:
    """For a directory deleted from inside a vfolder: removed at once, never restored."""
    return f"{vfolder_id.hex}.{FILES_MARK}{secrets.token_hex(4)}"


def _parse_trash_name(name: str) -> tuple[UUID, bool] | None:
    """(vfolder id, whether it holds files deleted from a live vfolder), or None."""
    hex_id, _, suffix = name.partition(".")
    try:
        return UUID(hex=hex_id), suffix.startswith(FILES_MARK)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class VolumeLayout:
    """The sharded layout: ``<root>/<hex[0:2]>/<hex[2:4]>/<hex>``."""

    root: Path

    @property
    def staging(self) -> Path:
        return self.root / STAGING_DIR

    @property
    def trash(self) -> Path:
        return self.root / TRASH_DIR

    def vfolder_path(self, vfolder_id: UUID) -> Path:
        hex_id = vfolder_id.hex
        return self.root / hex_id[0:2] / hex_id[2:4] / hex_id

    def place(self, vfolder_id: UUID, owner: VFolderOwner | None) -> Path:
        return self.vfolder_path(vfolder_id)

    def load(self) -> None:
        """Nothing to learn: a path is computed from the id alone."""

    def vfolder_ids(self) -> Iterator[UUID]:
        for first in _shard_dirs(self.root, 2):
            for second in _shard_dirs(first, 2):
                for leaf in _shard_dirs(second, 32):
                    if leaf.name.startswith(first.name + second.name):
                        yield UUID(hex=leaf.name)

    def new_trash_name(self, vfolder_id: UUID) -> str:
        # The random suffix keeps two deletions of the same id (restored, deleted again) apart.
        return f"{vfolder_id.hex}.{secrets.token_hex(4)}"

    def new_file_trash_name(self, vfolder_id: UUID) -> str:
        return _file_trash_name(vfolder_id)

    def parse_trash_name(self, name: str) -> tuple[UUID, bool] | None:
        return _parse_trash_name(name)

    def restore_path(self, trash_name: str, vfolder_id: UUID) -> Path:
        return self.vfolder_path(vfolder_id)


def scope_dir_name(owner: VFolderOwner) -> str:
    """The directory of an owner's quota scope.

    A canonical UUID owner id is its hex, as Backend.AI names ``user:<uuid>`` and
    ``project:<uuid>`` scopes (the kind is not in the path: UUIDs do not collide). Any other id
    gets ``<kind>-<percent-encoded id>``: a ``-`` is never in a hex name, the encoding is
    one-to-one and leaves no ``/``, and the name never starts with a dot (the proxy's own
    areas). An encoding too long for a file name is ``<kind>+<sha256>`` instead (``+`` is
    always percent-encoded, so the two forms never meet).
    """
    try:
        parsed = uuid.UUID(owner.id)
    except ValueError:
        parsed = None
    if parsed is not None and str(parsed) == owner.id:
        return parsed.hex
    kind = quote(owner.kind, safe="")
    encoded = f"{kind}-{quote(owner.id, safe='')}"
    if len(encoded) <= MAX_SCOPE_NAME:
        return encoded
    return f"{kind}+{hashlib.sha256(owner.id.encode()).hexdigest()}"


@dataclass(slots=True)
class BackendAILayout:
    """Backend.AI's layout: ``<root>/<quota scope>/<hex[0:2]>/<hex[2:4]>/<hex[4:]>``.

    A trashed vfolder's name carries its scope (``<hex>.<random>.<scope>``), so a restore puts
    it back where it was even on a node that never saw it.
    """

    root: Path
    _scopes: dict[UUID, str] = field(default_factory=dict)
    # File operations run in worker threads; the index is shared by all of them.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def staging(self) -> Path:
        return self.root / STAGING_DIR

    @property
    def trash(self) -> Path:
        return self.root / TRASH_DIR

    def _path_in(self, scope: str, vfolder_id: UUID) -> Path:
        hex_id = vfolder_id.hex
        return self.root / scope / hex_id[0:2] / hex_id[2:4] / hex_id[4:]

    def scope_of(self, vfolder_id: UUID) -> str | None:
        """The scope directory holding the vfolder, looked for on disk when not known yet."""
        with self._lock:
            scope = self._scopes.get(vfolder_id)
        if scope is not None:
            return scope
        for candidate in self._scope_dirs():
            if self._path_in(candidate, vfolder_id).is_dir():
                with self._lock:
                    self._scopes[vfolder_id] = candidate
                return candidate
        return None

    def vfolder_path(self, vfolder_id: UUID) -> Path:
        scope = self.scope_of(vfolder_id)
        if scope is None:
            return self.root / UNPLACED_DIR / vfolder_id.hex
        return self._path_in(scope, vfolder_id)

    def place(self, vfolder_id: UUID, owner: VFolderOwner | None) -> Path:
        known = self.scope_of(vfolder_id)
        if known is not None:
            return self._path_in(known, vfolder_id)  # a replayed create
        if owner is None:
            raise LayoutError(
                f"vfolder {vfolder_id}: the backendai layout needs the owner to place a vfolder"
            )
        scope = scope_dir_name(owner)
        with self._lock:
            self._scopes[vfolder_id] = scope
        return self._path_in(scope, vfolder_id)

    def load(self) -> None:
        for _ in self.vfolder_ids():
            pass

    def vfolder_ids(self) -> Iterator[UUID]:
        for scope in self._scope_dirs():
            scope_dir = self.root / scope
            for first in _shard_dirs(scope_dir, 2):
                for second in _shard_dirs(first, 2):
                    for leaf in _shard_dirs(second, 28):
                        vfolder_id = UUID(hex=first.name + second.name + leaf.name)
                        with self._lock:
                            self._scopes[vfolder_id] = scope
                        yield vfolder_id

    def _scope_dirs(self) -> list[str]:
        """Every directory at the root but the proxy's own (dot) areas."""
        try:
            with os.scandir(self.root) as entries:
                return sorted(
                    entry.name
                    for entry in entries
                    if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)
                )
        except FileNotFoundError:
            return []

    def new_trash_name(self, vfolder_id: UUID) -> str:
        scope = self.scope_of(vfolder_id)
        suffix = f".{scope}" if scope is not None else ""
        return f"{vfolder_id.hex}.{secrets.token_hex(4)}{suffix}"

    def new_file_trash_name(self, vfolder_id: UUID) -> str:
        return _file_trash_name(vfolder_id)

    def parse_trash_name(self, name: str) -> tuple[UUID, bool] | None:
        return _parse_trash_name(name)

    def restore_path(self, trash_name: str, vfolder_id: UUID) -> Path:
        parts = trash_name.split(".", 2)
        if len(parts) == 3 and parts[2] and not parts[2].startswith("."):
            scope = parts[2]
            with self._lock:
                self._scopes[vfolder_id] = scope
            return self._path_in(scope, vfolder_id)
        return self.vfolder_path(vfolder_id)


def _shard_dirs(parent: Path, width: int) -> Iterator[Path]:
    """Sub-directories of ``parent`` named with ``width`` lowercase hex digits."""
    try:
        entries = sorted(parent.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        name = entry.name
        if len(name) == width and all(c in HEX_DIGITS for c in name) and entry.is_dir():
            yield entry


@dataclass(frozen=True, slots=True)
class SnapshotLayout(VolumeLayout):
    """A snapshot's directory standing for its vfolder's, so the file operations read it."""

    snapshot: Path = Path()

    def vfolder_path(self, vfolder_id: UUID) -> Path:
        return self.snapshot
