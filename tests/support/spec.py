"""The committed OpenAPI document (``openapi/openapi.yaml``), parsed once per test process.

libyaml's loader where PyYAML has it: the pure-Python one took two CPU-seconds per parse of
this document, and a dozen modules read it."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi" / "openapi.yaml"

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader, C or Python


@cache
def _parsed() -> dict[str, Any]:
    spec: dict[str, Any] = parse_yaml(SPEC_PATH.read_text(encoding="utf-8"))
    return spec


def committed_spec() -> dict[str, Any]:
    """A private copy: a test may change what it gets without changing it for the next."""
    return copy.deepcopy(_parsed())
