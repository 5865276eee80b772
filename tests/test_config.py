"""Settings: zero-setup defaults, placeholder refusal, volumes from TOML."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.config import ConfigurationError, Settings, VolumeConfig
from app.main import create_app


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Settings read the process environment and ./.env: isolate from both.
    for key in [k for k in os.environ if k.startswith("STORAGE_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_zero_setup_defaults() -> None:
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 6021)
    assert settings.redis_url is None
    assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.effective_database_url.endswith("var/storage-proxy.sqlite3")
    assert settings.effective_env == "dev"
    assert settings.volumes() == {"local": VolumeConfig(path=Path("var/volumes/local"))}
    settings.check_safe_to_start()


def test_environment_and_comma_separated_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_SERVICE_KEYS", " key-one , key-two,,")
    monkeypatch.setenv("STORAGE_PORT", "7000")
    settings = Settings()
    assert settings.service_keys == ["key-one", "key-two"]
    assert settings.port == 7000


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("STORAGE_PORT=7123\nSTORAGE_JWT_AUDIENCE=aud-x\n")
    settings = Settings()
    assert (settings.port, settings.jwt_audience) == (7123, "aud-x")


def test_postgres_defaults_to_prod_and_refuses_placeholders() -> None:
    settings = Settings(database_url="postgresql+asyncpg://db/x")
    assert settings.effective_env == "prod"
    with pytest.raises(ConfigurationError, match=r"STORAGE_JWT_SECRET.*STORAGE_SERVICE_KEYS"):
        settings.check_safe_to_start()
    with pytest.raises(ConfigurationError):
        create_app(settings)


def test_prod_refuses_short_secrets_and_accepts_real_ones() -> None:
    weak = Settings(env="prod", jwt_secret="short", service_keys=["k" * 40])
    with pytest.raises(ConfigurationError, match="STORAGE_JWT_SECRET"):
        weak.check_safe_to_start()
    Settings(env="prod", jwt_secret="s" * 32, service_keys=["k" * 32]).check_safe_to_start()


def test_explicit_dev_allows_placeholders_anywhere() -> None:
    Settings(env="dev", database_url="postgresql+asyncpg://db/x").check_safe_to_start()


def test_volumes_from_toml(tmp_path: Path) -> None:
    config = tmp_path / "volumes.toml"
    config.write_text(
        """
[volumes.fast]
driver = "posix"
path = "/mnt/fast"
options = { mount_options = ["noatime"] }

[volumes.archive]
path = "/mnt/archive"
"""
    )
    volumes = Settings(config=config).volumes()
    assert volumes["fast"] == VolumeConfig(
        driver="posix", path=Path("/mnt/fast"), options={"mount_options": ["noatime"]}
    )
    assert volumes["archive"].driver == "posix"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not toml [", "cannot read"),
        ("[other]\nx = 1\n", "no \\[volumes"),
        ('[volumes.v]\ndriver = "posix"\n', "path"),
        ('[volumes."bad/name"]\npath = "/x"\n', "bad volume name"),
    ],
)
def test_broken_toml_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "volumes.toml"
    config.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        Settings(config=config).volumes()


def test_unknown_driver_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "volumes.toml"
    config.write_text('[volumes.v]\ndriver = "tape"\npath = "/x"\n')
    with pytest.raises(ConfigurationError, match="unknown driver 'tape'"):
        create_app(Settings(config=config))


def test_env_example_lists_every_setting() -> None:
    example = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    listed = {line.split("=", 1)[0] for line in example.splitlines() if line.startswith("STORAGE_")}
    expected = {f"STORAGE_{name.upper()}" for name in Settings.model_fields}
    assert listed == expected


def test_env_example_copied_to_dotenv_gives_the_defaults(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / ".env.example"
    (tmp_path / ".env").write_text(example.read_text())
    assert Settings() == Settings(_env_file=None)
