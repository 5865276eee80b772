"""Settings: zero-setup defaults, placeholder refusal, volumes from TOML."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from app.config import ConfigurationError, Settings, VolumeConfig
from app.main import create_app
from app.volumes.registry import VolumeRegistry
from drivers.registry import backends, canonical_driver_name


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


# -- An operator's volumes file: every mistake stops the start, none is silently ignored ----


def _volumes_file(tmp_path: Path, content: str) -> Path:
    config = tmp_path / "volumes.toml"
    config.write_text(content)
    return config


def test_backend_key_from_backend_ai_picks_that_driver(tmp_path: Path) -> None:
    """``backend = "xfs"`` (Backend.AI's spelling) once ran the volume on POSIX, silently."""
    config = _volumes_file(tmp_path, '[volumes.v]\nbackend = "xfs"\npath = "/x"\n')
    assert Settings(config=config).volumes()["v"].driver == "xfs"


@pytest.mark.parametrize("spelling", ['driver = "vfs"', 'backend = "vfs"'])
def test_vfs_is_another_name_for_posix(tmp_path: Path, spelling: str) -> None:
    config = _volumes_file(tmp_path, f'[volumes.v]\n{spelling}\npath = "{tmp_path / "v"}"\n')
    assert Settings(config=config).volumes()["v"].driver == "posix"
    volumes = VolumeRegistry.from_config(Settings(config=config).volumes())
    assert volumes.get("v").backend == "posix"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[volumes.v]\npath = "/x"\nbakend = "xfs"\n', "unknown key 'bakend'"),
        ('[volumes.v]\npath = "/x"\n[volume.w]\npath = "/y"\n', "unknown key 'volume'"),
        ('[volumes.v]\ndriver = "zfs"\npath = "/x"\n', "unknown driver 'zfs'"),
        ('[volumes.v]\nbackend = "tape"\npath = "/x"\n', "unknown driver 'tape'"),
        ('[volumes.v]\ndriver = "posix"\nbackend = "xfs"\npath = "/x"\n', "disagree"),
    ],
)
def test_typos_in_the_volumes_file_are_refused(tmp_path: Path, content: str, message: str) -> None:
    config = _volumes_file(tmp_path, content)
    with pytest.raises(ConfigurationError, match=message) as refused:
        Settings(config=config).volumes()
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("driver", "options", "message"),
    [
        ("posix", {"dir_mod": "0o700"}, "no option 'dir_mod'.*it takes: dir_mode, "),
        ("posix", {"quota": True}, "no option 'quota'"),
        ("xfs", {"btrfs": "/sbin/btrfs"}, "no option 'btrfs'"),
        ("btrfs", {"mount_point": "/mnt"}, "no option 'mount_point'"),
        ("posix", {"dir_mode": "rwx"}, "dir_mode: .*must be an octal mode"),
        ("posix", {"mount_options": "noatime"}, "mount_options: .*valid tuple"),
        ("posix", {"layout": "flat"}, "layout: .*'sharded' or 'backendai'"),
        ("xfs", {"command_timeout": -1}, "command_timeout: .*greater than 0"),
    ],
)
def test_options_a_driver_does_not_take_are_refused(
    tmp_path: Path, driver: str, options: dict[str, object], message: str
) -> None:
    volume = VolumeConfig(driver=driver, path=tmp_path / "v", options=options)
    with pytest.raises(ConfigurationError, match=message) as refused:
        VolumeRegistry.from_config({"v": volume})
    assert str(refused.value).startswith("volume 'v': ")
    assert "\n" not in str(refused.value)


# -- The shipped examples, copied as they are into a production deployment -----------------

ROOT = Path(__file__).resolve().parents[1]
SECRET_SETTINGS = ("STORAGE_JWT_SECRET", "STORAGE_SERVICE_KEYS", "STORAGE_JWT_PREVIOUS_SECRETS")
STRONG = "k9Vq2mXr7LpT4wZs8NcY1hBd6FgJ3eQa5uKo0iRt"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    return loaded


def _shipped_secret_values() -> list[tuple[str, str]]:
    """Every non-empty value that docker/compose.yaml and .env.example give a setting whose
    name says it is a secret or a key (``${VAR:-default}`` counts by its default)."""
    found: list[tuple[str, str]] = []
    for service in _compose()["services"].values():
        for name, value in (service.get("environment") or {}).items():
            found.append((f"compose {name}", re.sub(r"^\$\{\w+:-(.*)\}$", r"\1", str(value))))
    for line in (ROOT / ".env.example").read_text().splitlines():
        if re.match(r"^#?\s*STORAGE_\w+=", line):
            name, value = line.lstrip("# ").split("=", 1)
            found.append((f".env.example {name}", value))
    return [
        (where, value)
        for where, value in found
        if re.search(r"SECRET|_KEYS?$|PASSWORD|TOKEN", where) and value and "${" not in value
    ]


def test_the_shipped_examples_hold_secrets_to_check() -> None:
    # The compose file gives both STORAGE_* secrets an example default.
    assert {where for where, _ in _shipped_secret_values()} >= {
        "compose STORAGE_JWT_SECRET",
        "compose STORAGE_SERVICE_KEYS",
    }


@pytest.mark.parametrize("setting", SECRET_SETTINGS)
@pytest.mark.parametrize(("where", "value"), _shipped_secret_values())
def test_prod_refuses_every_shipped_example_secret(
    monkeypatch: pytest.MonkeyPatch, setting: str, where: str, value: str
) -> None:
    """An operator who starts the compose file (or .env.example) without replacing its
    examples runs with a secret anyone can read on GitHub: prod refuses it in any slot."""
    monkeypatch.setenv("STORAGE_ENV", "prod")
    monkeypatch.setenv("STORAGE_JWT_SECRET", STRONG)
    monkeypatch.setenv("STORAGE_SERVICE_KEYS", STRONG[::-1])
    Settings().check_safe_to_start()
    monkeypatch.setenv(setting, value)
    with pytest.raises(ConfigurationError, match=setting):
        Settings().check_safe_to_start()


def test_env_example_copied_to_dotenv_refuses_prod(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        (ROOT / ".env.example").read_text()
        + "\nSTORAGE_DATABASE_URL=postgresql+asyncpg://db.example/storage\n"
    )
    with pytest.raises(ConfigurationError, match=r"STORAGE_JWT_SECRET.*STORAGE_SERVICE_KEYS"):
        Settings().check_safe_to_start()


def test_compose_publishes_on_this_host_only() -> None:
    """docker compose up on a laptop or a shared server must not expose the API to the LAN."""
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_the_usage_scan_interval_is_minutes_and_keeps_its_old_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings(_env_file=None).usage_scan_interval_seconds == 300
    monkeypatch.setenv("STORAGE_QUOTA_RECONCILE_INTERVAL_SECONDS", "120")
    assert Settings(_env_file=None).usage_scan_interval_seconds == 120
    monkeypatch.setenv("STORAGE_USAGE_SCAN_INTERVAL_SECONDS", "60")
    assert Settings(_env_file=None).usage_scan_interval_seconds == 60


def _readme_volume_examples() -> list[tuple[str, str, dict[str, Any]]]:
    """(volume, driver, options) of every ``[volumes.*]`` TOML example in the README."""
    found = []
    readme = (ROOT / "README.md").read_text()
    for block in re.findall(r"```toml\n(.*?)```", readme, flags=re.S):
        if "[volumes." not in block:
            continue
        for name, volume in tomllib.loads(block).get("volumes", {}).items():
            found.append((name, volume.get("driver", volume.get("backend")), volume))
    return found


def test_every_drivers_readme_example_is_a_valid_configuration() -> None:
    """The examples an operator copies name real drivers and options of the right types."""
    examples = _readme_volume_examples()
    assert {canonical_driver_name(driver) for _, driver, _ in examples} >= set(backends())
    for name, driver, volume in examples:
        backend = backends()[canonical_driver_name(driver)]
        try:
            backend.options.model_validate(volume.get("options", {}))
        except ValidationError as exc:
            pytest.fail(f"README example [volumes.{name}] ({driver}): {exc}")
