"""Logging can never break a request, and the suite runs at the default level (INFO), so a
logging fault cannot hide behind a quieter test configuration."""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path

import httpx
import pytest

from app.observability.logging import JsonFormatter, TextFormatter, get_logger
from tests.support.server import clean_environment, run_cli, serving

ROOT = Path(__file__).resolve().parents[1]
HELPER = ROOT / "app" / "observability" / "logging.py"
RESERVED = sorted(vars(logging.makeLogRecord({})).keys() | {"message", "asctime"})
LEVEL_CALLS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}


def test_an_operator_shares_a_vfolder_on_a_server_at_the_default_log_level(
    tmp_path: Path,
) -> None:
    """``PUT …/grants/…`` logged a field named ``created``, which LogRecord owns: 500."""
    env = clean_environment()
    with serving(cwd=tmp_path, env=env) as server:
        token = run_cli(["token", "--user", "alice"], cwd=tmp_path, env=env).stdout.strip()
        alice = {"Authorization": f"Bearer {token}"}
        made = httpx.post(
            f"{server.base_url}/v1/vfolders",
            json={"name": "shared", "volume": "local"},
            headers=alice,
        )
        assert made.status_code == 201, made.text
        grants = f"{server.base_url}/v1/vfolders/{made.json()['id']}/grants"
        shared = httpx.put(f"{grants}/user/bob", json={"mode": "ro"}, headers=alice)
        assert shared.status_code == 201, shared.text
        changed = httpx.put(f"{grants}/user/bob", json={"mode": "rw"}, headers=alice)
        assert changed.status_code == 200, changed.text
        revoked = httpx.delete(f"{grants}/user/bob", headers=alice)
        assert revoked.status_code == 204, revoked.text
        lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    grant_set = [line for line in lines if line["msg"] == "grant set"]
    assert [line["created"] for line in grant_set] == [True, False]
    assert grant_set[0]["grantee"] == "user:bob"


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter("%(message)s")])
def test_a_log_field_may_be_named_like_any_log_record_attribute(
    formatter: logging.Formatter, caplog: pytest.LogCaptureFixture
) -> None:
    fields = {name: f"value of {name}" for name in RESERVED}
    with caplog.at_level(logging.INFO):
        get_logger("tests.logging_safety").info("every reserved name", extra=fields)
    (record,) = [r for r in caplog.records if r.name == "tests.logging_safety"]
    assert record.getMessage() == "every reserved name"
    out = formatter.format(record)
    if isinstance(formatter, JsonFormatter):
        entry = json.loads(out)
        assert entry["msg"] == "every reserved name"  # a field never hides the base keys
        assert entry["logger"] == "tests.logging_safety"
        assert entry["created"] == "value of created"
        assert entry["module"] == "value of module"
    else:
        assert "created=value of created" in out


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter("%(message)s")])
def test_a_file_name_that_is_not_utf8_is_logged_exactly_and_writably(
    formatter: logging.Formatter, caplog: pytest.LogCaptureFixture
) -> None:
    """A container names a file with bytes that are not UTF-8; the name reaches a log call as
    the disk gives it (lone surrogates), which no UTF-8 sink can write: the line was lost."""
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    with caplog.at_level(logging.INFO):
        log = get_logger("tests.logging_safety")
        log.info("refused %s", name, extra={"path": name})
        log.info("refused: %s", FileNotFoundError(name))
    record, about_an_error = [r for r in caplog.records if r.name == "tests.logging_safety"]
    out = formatter.format(record)
    out.encode("utf-8")  # raised UnicodeEncodeError: the handler dropped the line
    formatter.format(about_an_error).encode("utf-8")
    assert "caf\\udce9.txt" in record.getMessage()
    assert "caf\\udce9.txt" in about_an_error.getMessage()
    if isinstance(formatter, JsonFormatter):
        assert json.loads(out)["path"] == "caf\\udce9.txt"


def _sources() -> list[Path]:
    return sorted(p for folder in ("app", "drivers") for p in (ROOT / folder).rglob("*.py"))


def test_no_module_logs_around_the_namespacing_helper() -> None:
    """Every logger of the app comes from ``get_logger``; a plain ``logging.getLogger``
    (or the root logger's ``logging.info``…) would take ``extra=`` fields as record
    attributes again, and a field named ``name`` or ``created`` would raise. Drivers, which
    know nothing of the app, may take a plain logger but never pass ``extra=``."""
    offences = []
    for path in _sources():
        if path == HELPER:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            in_driver = path.is_relative_to(ROOT / "drivers")
            logs = isinstance(func, ast.Attribute) and func.attr in LEVEL_CALLS
            if in_driver and logs and any(keyword.arg == "extra" for keyword in node.keywords):
                # Drivers cannot reach the app's helper: they log plain messages only.
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno} extra= in a driver")
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                module, attr = func.value.id, func.attr
                banned = LEVEL_CALLS | {"LoggerAdapter", "makeLogRecord"}
                if module == "logging" and (
                    attr in banned or (attr == "getLogger" and not in_driver)
                ):
                    offences.append(f"{path.relative_to(ROOT)}:{node.lineno} logging.{attr}")
            if isinstance(func, ast.Name) and func.id == "getLogger":
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno} getLogger")
    assert offences == []


def test_the_suite_runs_at_the_default_log_level() -> None:
    """INFO records are made (and captured) in every test, and no test quiets a server."""
    assert logging.getLogger().getEffectiveLevel() <= logging.INFO
    quieted = [
        f"{path.relative_to(ROOT)}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if re.search(r"STORAGE_LOG_LEVEL\s*[=:,]", path.read_text())
    ]
    assert quieted == []
