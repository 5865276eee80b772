"""The one containment helper's first half: turning client text into a relative path that
cannot leave a vfolder. The second half (never following a symlink while walking it) is in
``drivers.fsops``."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from drivers.errors import UnsafePath

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096


@dataclass(frozen=True, slots=True)
class RelativePath:
    """Normalised components below a vfolder root; ``()`` is the root itself."""

    parts: tuple[str, ...]

    @property
    def is_root(self) -> bool:
        return not self.parts

    @property
    def name(self) -> str:
        return self.parts[-1] if self.parts else ""

    @property
    def parent(self) -> RelativePath:
        return RelativePath(self.parts[:-1])

    def child(self, name: str) -> RelativePath:
        return RelativePath((*self.parts, name))

    def is_within(self, other: RelativePath) -> bool:
        """True when self is ``other`` or lies below it."""
        return self.parts[: len(other.parts)] == other.parts

    def __str__(self) -> str:
        return "/".join(self.parts)


ROOT = RelativePath(())


def require_single_name(name: object) -> str:
    """``name`` if it names one entry of a directory, else ``UnsafePath``: never empty, ``.``
    or ``..``, no ``/`` or NUL (``openat`` would read those as a walk, or from ``/``), valid
    UTF-8 (no lone surrogate) and at most MAX_COMPONENT_BYTES long."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
        raise UnsafePath("a name is empty, '.', '..', or holds '/' or NUL")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePath("a name is not valid UTF-8") from None
    if len(encoded) > MAX_COMPONENT_BYTES:
        raise UnsafePath(f"a name is longer than {MAX_COMPONENT_BYTES} bytes")
    return name


def parse_relative_path(text: str) -> RelativePath:
    """Raises ``UnsafePath`` for absolute paths, ``..`` escaping the root, backslashes,
    control characters, text that is not valid UTF-8, and over-long names.

    ``.`` and empty components are dropped and ``a/../b`` becomes ``b``: lexical, so it is
    exact whatever ``a`` is on disk (nothing on disk is consulted, no symlink followed)."""
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePath("path is not valid UTF-8") from None
    if len(encoded) > MAX_PATH_BYTES:
        raise UnsafePath(f"path is longer than {MAX_PATH_BYTES} bytes")
    if text.startswith("/"):
        raise UnsafePath("path must be relative to the vfolder root")
    if "\\" in text:
        raise UnsafePath("path must not contain backslashes")
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise UnsafePath("path must not contain NUL or control characters")
    parts: list[str] = []
    for component in text.split("/"):
        if component in ("", "."):
            continue
        if component == "..":
            if not parts:
                raise UnsafePath("path leaves the vfolder")
            parts.pop()
            continue
        if len(component.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise UnsafePath(f"a path component is longer than {MAX_COMPONENT_BYTES} bytes")
        parts.append(component)
    return RelativePath(tuple(parts))
