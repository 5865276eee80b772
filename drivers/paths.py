"""The one containment helper's first half: turning client text into a relative path that
cannot leave a vfolder. The second half (never following a symlink while walking it) is in
``drivers.fsops``."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass

from drivers.errors import UnsafePath

# How every directory inside a vfolder is opened: never through a symlink.
O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
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

    @property
    def raw(self) -> bytes:
        """The exact bytes of the path on disk (see ``RAW_ERRORS``)."""
        return str(self).encode("utf-8", RAW_ERRORS)


ROOT = RelativePath(())

# A name on disk is bytes. One that is not UTF-8 (a container can make one through the
# mount) is held as Python's filesystem encoding holds it: each undecodable byte as a lone
# surrogate U+DC80..U+DCFF. That is lossless, and only such canonical escapes are accepted:
# any other surrogate, or an escape of bytes that would decode as UTF-8 (a second spelling
# of another name), is refused.
RAW_ERRORS = "surrogateescape"


def is_utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raw_bytes(text: str) -> bytes:
    """The bytes ``text`` holds, if it holds bytes in the canonical way, else ``UnsafePath``."""
    try:
        encoded = text.encode("utf-8", RAW_ERRORS)
    except UnicodeEncodeError:
        raise UnsafePath("a name holds a lone surrogate") from None
    if encoded.decode("utf-8", RAW_ERRORS) != text:
        raise UnsafePath("a name escapes bytes that are valid UTF-8")
    return encoded


def display_text(text: str) -> str:
    """``text`` for people and JSON: each byte that is not UTF-8 (and any other lone
    surrogate) shown as U+FFFD."""
    if is_utf8(text):
        return text
    try:
        return text.encode("utf-8", RAW_ERRORS).decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def decode_raw(raw: bytes) -> str:
    """Bytes from a URL or a percent-encoded path, held losslessly (see ``RAW_ERRORS``);
    whether a non-UTF-8 name is accepted is for ``parse_relative_path`` to say."""
    return raw.decode("utf-8", RAW_ERRORS)


def require_single_name(name: object) -> str:
    """``name`` if it names one entry of a directory, else ``UnsafePath``: never empty, ``.``
    or ``..``, no ``/`` or NUL (``openat`` would read those as a walk, or from ``/``), valid
    UTF-8 or bytes held in the canonical way (see ``RAW_ERRORS``: a name read from disk may
    be either), and at most MAX_COMPONENT_BYTES long."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
        raise UnsafePath("a name is empty, '.', '..', or holds '/' or NUL")
    encoded = _raw_bytes(name)
    if len(encoded) > MAX_COMPONENT_BYTES:
        raise UnsafePath(f"a name is longer than {MAX_COMPONENT_BYTES} bytes")
    return name


def parse_relative_path(text: str, *, existing: bool = False) -> RelativePath:
    """Raises ``UnsafePath`` for absolute paths, ``..`` escaping the root, backslashes,
    control characters, text that is not valid UTF-8, and over-long names.

    ``existing``: the path names an entry to read, move away or delete, so it may hold
    bytes that are not UTF-8 (see ``RAW_ERRORS``), as names made through a mount can. The
    API itself never makes such a name.

    ``.`` and empty components are dropped and ``a/../b`` becomes ``b``: lexical, so it is
    exact whatever ``a`` is on disk (nothing on disk is consulted, no symlink followed)."""
    if existing:
        encoded = _raw_bytes(text)
    else:
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
        if len(component.encode("utf-8", RAW_ERRORS)) > MAX_COMPONENT_BYTES:
            raise UnsafePath(f"a path component is longer than {MAX_COMPONENT_BYTES} bytes")
        parts.append(component)
    return RelativePath(tuple(parts))
