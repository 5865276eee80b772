"""Driver names as used in ``[volumes.<name>] driver = "..."``, found through the Python
entry-point group ``storage_proxy.drivers``. Each entry point names a ``Backend``: the built-in
ones are registered in this project's pyproject.toml, and a separately installed package adds
a backend by declaring one in its own, without forking::

    [project.entry-points."storage_proxy.drivers"]
    mybackend = "my_package.driver:BACKEND"

``register`` adds one in-process (tests, embedding)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from drivers.base import VolumeDriver
from drivers.errors import InvalidDriverOptions, UnknownDriver
from drivers.options import DriverOptions

ENTRY_POINT_GROUP = "storage_proxy.drivers"


@dataclass(frozen=True, slots=True)
class Backend:
    """One backend: how to build its driver for a volume, and the model of the options it
    reads (``drivers.options``: any other option is a typo that would silently do nothing,
    so it is refused). ``aliases``: other names operators already use for it."""

    name: str
    build: Callable[..., VolumeDriver]  # (root, *, options: the validated model) -> driver
    options: type[DriverOptions]
    aliases: tuple[str, ...] = ()


_lock = threading.Lock()
_backends: dict[str, Backend] | None = None


def _discovered() -> dict[str, Backend]:
    found: dict[str, Backend] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        backend = point.load()
        if not isinstance(backend, Backend) or backend.name != point.name:
            raise UnknownDriver(
                f"entry point {point.name!r} = {point.value!r} of {ENTRY_POINT_GROUP} is not "
                f"a drivers.registry.Backend named {point.name!r}"
            )
        found[point.name] = backend
    return found


def backends() -> dict[str, Backend]:
    """Every registered backend by name (entry points are read once, on first use)."""
    global _backends
    with _lock:
        if _backends is None:
            _backends = _discovered()
        return dict(_backends)


def register(backend: Backend) -> None:
    """Adds (or replaces) a backend in this process."""
    backends()
    with _lock:
        assert _backends is not None
        _backends[backend.name] = backend


def unregister(name: str) -> None:
    backends()
    with _lock:
        assert _backends is not None
        _backends.pop(name, None)


def forget() -> None:
    """Reads the entry points again on next use (a package installed meanwhile), dropping
    what ``register`` added."""
    global _backends
    with _lock:
        _backends = None


def canonical_driver_name(name: str) -> str:
    """The registered name for ``name`` (an alias resolved); ``UnknownDriver`` otherwise."""
    known = backends()
    if name in known:
        return name
    for backend in known.values():
        if name in backend.aliases:
            return backend.name
    names = sorted({*known, *(a for b in known.values() for a in b.aliases)})
    raise UnknownDriver(f"unknown driver {name!r} (known: {', '.join(names)})")


def build_driver(name: str, *, root: Path, options: dict[str, Any]) -> VolumeDriver:
    backend = backends()[canonical_driver_name(name)]
    try:
        validated = backend.options.model_validate(options)
    except ValidationError as exc:
        raise InvalidDriverOptions(_options_refused(backend, exc)) from None
    try:
        return backend.build(root, options=validated)
    except (TypeError, ValueError) as exc:
        raise InvalidDriverOptions(f"driver {backend.name!r}: bad option value: {exc}") from exc


def _options_refused(backend: Backend, error: ValidationError) -> str:
    """One line per refused option, without echoing values (an option may hold a secret)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "options"
        if item["type"] == "extra_forbidden":
            problems.append(f"no option {where!r}")
        else:
            problems.append(f"{where}: {item['msg']}")
    accepted = ", ".join(sorted(backend.options.model_fields))
    return f"driver {backend.name!r}: {'; '.join(problems)} (it takes: {accepted})"
