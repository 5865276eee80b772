"""The test suite shares its PostgreSQL and Redis with whatever else runs on the machine (other
checkouts, a developer's own service): it must go only where the operator points it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
SERVICES = TESTS / "support" / "services.py"


def _test_sources() -> dict[Path, str]:
    return {path: path.read_text() for path in sorted(TESTS.rglob("*.py"))}


def test_no_test_names_a_redis_database_or_host_of_its_own() -> None:
    """``redis://…/0`` in a test writes to database 0 whatever STORAGE_TEST_REDIS_URL says."""
    literal = re.compile(r"""redis://[^"'\s]*""")
    offenders = [
        f"{path.relative_to(ROOT)}: {match}"
        for path, source in _test_sources().items()
        if path not in {SERVICES, Path(__file__).resolve()}
        for match in literal.findall(source)
    ]
    assert offenders == []


def test_every_redis_the_tests_reach_follows_the_configured_url() -> None:
    """Tests that cut the link reach Redis through a proxy: the same server, database and
    credentials as STORAGE_TEST_REDIS_URL, not 127.0.0.1:6379/0."""
    probe = (
        "from tests.support import services as s; "
        "print(s.REDIS_HOST, s.REDIS_PORT, s.redis_url_via('127.0.0.1:7'), s.UNREACHABLE_REDIS_URL)"
    )
    env = {**os.environ, "STORAGE_TEST_REDIS_URL": "redis://:pw@10.9.8.7:6390/5"}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "10.9.8.7",
        "6390",
        "redis://:pw@127.0.0.1:7/5",
        "redis://:pw@127.0.0.1:1/5",
    ]


def test_readme_documents_every_test_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    variables = {
        name
        for source in _test_sources().values()
        for name in re.findall(r"\b(STORAGE_TEST_\w+|STORAGE_REQUIRE_SERVICES)\b", source)
    }
    assert "STORAGE_TEST_REDIS_URL" in variables
    assert sorted(name for name in variables if f"`{name}`" not in readme) == []
