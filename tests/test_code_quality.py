"""The gates from pyproject.toml, run as part of the one test command."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )


def test_ruff_lint() -> None:
    result = _run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = _run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


# The drivers' own modules that the app must not reach: it sees drivers only through the
# contract (drivers.base, drivers.types, drivers.errors, drivers.paths) and the registry.
DRIVER_INTERNALS = (
    "drivers.fsops",
    "drivers.clone",
    "drivers.driver",
    "drivers.staging",
    "drivers.usage_scan",
    "drivers.posix",
    "drivers.xfs",
    "drivers.btrfs",
    "drivers.ddn",
    "drivers.nfs",
)


def _imported_modules(tree: ast.AST) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def test_the_app_sees_drivers_only_through_the_contract() -> None:
    offenders = {}
    for path in sorted((ROOT / "app").rglob("*.py")):
        imported = _imported_modules(ast.parse(path.read_text(), filename=str(path)))
        reached = sorted(
            module
            for module in imported
            if any(
                module == banned or module.startswith(f"{banned}.") for banned in DRIVER_INTERNALS
            )
        )
        if reached:
            offenders[str(path.relative_to(ROOT))] = reached
    assert not offenders, offenders


def test_the_import_rule_sees_an_offender() -> None:
    tree = ast.parse("from drivers.fsops import StagedFile\nimport drivers.xfs\n")
    assert {"drivers.fsops", "drivers.xfs"} <= _imported_modules(tree)


def _modules_importing(name: str) -> set[str]:
    """The app's modules (as paths from the root) that import ``name`` (``module.attr``)."""
    found = set()
    for path in sorted((ROOT / "app").rglob("*.py")):
        if name in _imported_modules(ast.parse(path.read_text(), filename=str(path))):
            found.add(str(path.relative_to(ROOT)))
    return found


def test_every_dependency_alias_lives_in_deps() -> None:
    assert _modules_importing("fastapi.Depends") == {"app/deps.py"}


def test_access_is_decided_only_by_the_gate() -> None:
    """The rules are applied in one place: every other module asks ``AccessGate``."""
    assert _modules_importing("app.permissions.policy.authorize") == {"app/permissions/access.py"}
