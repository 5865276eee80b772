"""Where things live on a volume: the sharded vfolder tree and the proxy's own areas."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

STAGING_DIR = ".staging"
TRASH_DIR = ".trash"
FILES_MARK = "files-"
HEX_DIGITS = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class VolumeLayout:
    """``<root>/<hex[0:2]>/<hex[2:4]>/<hex>`` for vfolders; ``.staging`` and ``.trash`` beside
    them, on the same filesystem, so finishing an upload or deleting a vfolder is one rename
    and no container mounting a vfolder can see either area."""

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

    def vfolder_ids(self) -> Iterator[UUID]:
        """Every vfolder directory present on the volume (blocking: walks two shard levels)."""
        for first in _shard_dirs(self.root, 2):
            for second in _shard_dirs(first, 2):
                for leaf in _shard_dirs(second, 32):
                    if leaf.name.startswith(first.name + second.name):
                        yield UUID(hex=leaf.name)

    def new_trash_name(self, vfolder_id: UUID) -> str:
        # The random suffix keeps two deletions of the same id (restored, deleted again) apart.
        return f"{vfolder_id.hex}.{secrets.token_hex(4)}"

    def new_file_trash_name(self, vfolder_id: UUID) -> str:
        """For a directory deleted from inside a vfolder: removed at once, never restored."""
        return f"{vfolder_id.hex}.{FILES_MARK}{secrets.token_hex(4)}"

    @staticmethod
    def parse_trash_name(name: str) -> tuple[UUID, bool] | None:
        """(vfolder id, whether it holds files deleted from a live vfolder), or None."""
        hex_id, _, suffix = name.partition(".")
        try:
            return UUID(hex=hex_id), suffix.startswith(FILES_MARK)
        except ValueError:
            return None


def _shard_dirs(parent: Path, width: int) -> Iterator[Path]:
    """Sub-directories of ``parent`` named with ``width`` lowercase hex digits."""
    try:
        entries = sorted(parent.iterdir())
    except FileNotFoundError:
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
