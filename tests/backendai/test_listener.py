"""The Manager-facing listener's configuration: off unless a secret is set, refused with weak
secrets in prod or on the main port, and served by every worker."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from app.config import ConfigurationError, Settings
from app.main import create_app
from tests.backendai.conftest import AUTH_HEADER, CLIENT_TOKEN_SECRET, MANAGER_SECRET
from tests.support.server import clean_environment, free_port, run_cli, serving

STRONG = "s" * 40


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in [k for k in os.environ if k.startswith("STORAGE_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_off_unless_a_secret_is_set() -> None:
    assert not Settings().manager_api_enabled
    assert create_app(Settings()).state.manager_app is None
    assert create_app(Settings(manager_api_secret="x")).state.manager_app is not None


def test_several_secrets_for_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_MANAGER_API_SECRET", " old-one , new-one ")
    assert Settings().manager_api_secret == ["old-one", "new-one"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"manager_api_secret": ["short"]}, "STORAGE_MANAGER_API_SECRET"),
        ({"manager_api_secret": [STRONG, "change-me"]}, "STORAGE_MANAGER_API_SECRET"),
        ({"manager_api_secret": [STRONG]}, "STORAGE_MANAGER_CLIENT_TOKEN_SECRET"),
        (
            {"manager_api_secret": [STRONG], "manager_client_token_secret": "short"},
            "STORAGE_MANAGER_CLIENT_TOKEN_SECRET",
        ),
    ],
)
def test_prod_refuses_weak_manager_secrets(overrides: dict[str, object], message: str) -> None:
    settings = Settings(env="prod", jwt_secret=STRONG, service_keys=[STRONG], **overrides)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=message):
        settings.check_safe_to_start()


def test_prod_accepts_strong_manager_secrets() -> None:
    Settings(
        env="prod",
        jwt_secret=STRONG,
        service_keys=[STRONG],
        manager_api_secret=[STRONG],
        manager_client_token_secret="t" * 40,
    ).check_safe_to_start()


def test_serve_refuses_the_main_port_for_the_manager_api(tmp_path: Path) -> None:
    port = free_port()
    result = run_cli(
        ["serve", "--port", str(port)],
        cwd=tmp_path,
        env=clean_environment(
            STORAGE_MANAGER_API_SECRET=MANAGER_SECRET, STORAGE_MANAGER_API_PORT=str(port)
        ),
    )
    assert result.returncode == 2, result.stderr
    assert "STORAGE_MANAGER_API_PORT" in result.stderr and "Traceback" not in result.stderr


def test_both_listeners_are_served_by_every_worker(tmp_path: Path) -> None:
    manager_port = free_port()
    env = clean_environment(
        STORAGE_MANAGER_API_SECRET=MANAGER_SECRET,
        STORAGE_MANAGER_API_PORT=str(manager_port),
        STORAGE_MANAGER_CLIENT_TOKEN_SECRET=CLIENT_TOKEN_SECRET,
    )
    with serving(cwd=tmp_path, env=env, extra_args=["--workers", "2"], ready_within=30) as server:
        manager = f"http://127.0.0.1:{manager_port}"
        for _ in range(10):  # new connections: both workers answer
            reply = httpx.get(f"{manager}/volumes", headers={AUTH_HEADER: MANAGER_SECRET})
            assert reply.status_code == 200 and reply.json()["volumes"][0]["name"] == "local"
            assert httpx.get(f"{server.base_url}/health/live").status_code == 200
            assert httpx.get(f"{manager}/health/live").status_code == 404
