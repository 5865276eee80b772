"""Settings: environment variables prefixed ``STORAGE_``, a ``.env`` file, and an optional TOML
file (named by ``STORAGE_CONFIG``) holding volume definitions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from drivers.errors import UnknownDriver
from drivers.registry import canonical_driver_name

# Values that ship in the code: fine on a laptop, refused anywhere else.
PLACEHOLDER_JWT_SECRET = "dev-insecure-jwt-secret-change-me"  # noqa: S105
PLACEHOLDER_SERVICE_KEY = "dev-insecure-service-key"
PLACEHOLDERS = frozenset({PLACEHOLDER_JWT_SECRET, PLACEHOLDER_SERVICE_KEY, "", "change-me"})
MIN_SECRET_BYTES = 32
# The examples in docker/compose.yaml and .env.example say what to replace: kept as they are,
# every deployment made from them would share one public secret.
EXAMPLE_SECRET = re.compile(r"replace|change-?me|example|placeholder|insecure|secret-here", re.I)

VOLUME_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ConfigurationError(Exception):
    """The configuration cannot be used; the message says what to change."""


class VolumeConfig(BaseModel):
    """One ``[volumes.<name>]`` table of the TOML file. A key it does not know is refused: an
    ignored ``backend = "xfs"`` once ran a volume on the default POSIX driver."""

    model_config = ConfigDict(extra="forbid")

    driver: str = "posix"
    path: Path
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _backend_is_another_name_for_driver(cls, data: object) -> object:
        """``backend`` is what Backend.AI's storage-proxy calls the key."""
        if not isinstance(data, dict) or "backend" not in data:
            return data
        data = dict(data)
        backend = data.pop("backend")
        if "driver" in data and data["driver"] != backend:
            raise ValueError(f"driver {data['driver']!r} and backend {backend!r} disagree")
        data["driver"] = backend
        return data

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, name: str) -> str:
        try:
            return canonical_driver_name(name)
        except UnknownDriver as exc:
            raise ValueError(str(exc)) from None


def _unusable_secret(secret: str) -> bool:
    """A shipped placeholder or example, or too short to resist guessing."""
    return (
        secret in PLACEHOLDERS
        or EXAMPLE_SECRET.search(secret) is not None
        or len(secret.encode()) < MIN_SECRET_BYTES
    )


def _one_line(exc: ValidationError) -> str:
    """Pydantic's report, on the one line a start-up refusal prints."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown key {where!r}")
        else:
            message = error["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STORAGE_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    env: Literal["dev", "prod"] | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=6021, ge=1, le=65535)
    data_dir: Path = Path("./var")
    database_url: str | None = None
    database_pool_size: int = Field(default=10, ge=1)
    redis_url: str | None = None
    redis_key_prefix: str = "storage-proxy:"
    cache_ttl_seconds: int = Field(default=60, ge=1)
    local_cache: bool = True
    service_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [PLACEHOLDER_SERVICE_KEY]
    )
    jwt_secret: str = PLACEHOLDER_JWT_SECRET
    jwt_previous_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    jwt_public_keys: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    jwt_audience: str = "storage-proxy"
    jwt_issuer: str | None = None
    jwt_leeway_seconds: int = Field(default=30, ge=0)
    config: Path | None = None
    trash_purge_interval_seconds: float = Field(default=30.0, gt=0)
    tus_max_size_bytes: int = Field(default=1 << 40, gt=0)
    upload_expiry_seconds: int = Field(default=24 * 3600, gt=0)
    upload_lock_ttl_seconds: float = Field(default=30.0, gt=0)
    # A tus upload whose destination exists when it is created or completed: refused (409),
    # replacing it, or stored as "name (1).ext"; the upload's `overwrite` metadata wins.
    upload_collision: Literal["fail", "replace", "rename"] = "fail"
    # How often every vfolder's usage ledger is checked against its disk (writes made
    # through a mount are found this way); the old name is still read.
    usage_scan_interval_seconds: float = Field(
        default=300.0,
        gt=0,
        validation_alias=AliasChoices(
            "usage_scan_interval_seconds",
            "STORAGE_USAGE_SCAN_INTERVAL_SECONDS",
            "STORAGE_QUOTA_RECONCILE_INTERVAL_SECONDS",
        ),
    )
    task_lease_seconds: float = Field(default=30.0, gt=0)
    task_poll_seconds: float = Field(default=2.0, gt=0)
    # A PUT's or form upload's staging file left by a dead writer goes once unwritten this long.
    staging_grace_seconds: float = Field(default=3600.0, gt=0)
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    # Bounds of one HTTP request a client cannot stretch (enforced by app.http_protocol).
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    max_url_bytes: int = Field(default=16 * 1024, ge=256)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_idle_timeout_seconds: float = Field(default=60.0, gt=0)
    body_min_bytes_per_second: float = Field(default=500.0, ge=0)
    # The Backend.AI Manager-facing listener (app/backendai): on when a secret is set. Several
    # comma-separated secrets are all accepted, for rotation.
    manager_api_secret: Annotated[list[str], NoDecode] = Field(default_factory=list)
    manager_api_host: str = "127.0.0.1"
    manager_api_port: int = Field(default=6022, ge=1, le=65535)
    # Signs the upload and download tokens the Manager-facing API mints for /upload, /download.
    manager_client_token_secret: str | None = None
    manager_client_token_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    # How long /folder/delete and /folder/clone wait for their task before answering: the
    # 23.9 Manager takes a 2xx as "finished" and gives up after 300 s.
    manager_api_sync_wait_seconds: float = Field(default=270.0, gt=0)

    @field_validator(
        "service_keys",
        "jwt_previous_secrets",
        "jwt_public_keys",
        "cors_allow_origins",
        "manager_api_secret",
        mode="before",
    )
    @classmethod
    def _split_comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @property
    def manager_api_enabled(self) -> bool:
        return bool(self.manager_api_secret)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'storage-proxy.sqlite3').resolve()}"

    @property
    def uses_embedded_database(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def effective_env(self) -> Literal["dev", "prod"]:
        """Unset means dev on the embedded SQLite (a laptop) and prod on anything else."""
        if self.env is not None:
            return self.env
        return "dev" if self.uses_embedded_database else "prod"

    def volumes(self) -> dict[str, VolumeConfig]:
        """Volumes from the TOML file, or the single default ``local`` volume."""
        if self.config is None:
            return {"local": VolumeConfig(path=self.data_dir / "volumes" / "local")}
        try:
            raw = tomllib.loads(self.config.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"cannot read STORAGE_CONFIG {self.config}: {exc}") from exc
        tables = raw.get("volumes")
        if not isinstance(tables, dict) or not tables:
            raise ConfigurationError(f"{self.config} defines no [volumes.<name>] tables")
        unknown = sorted(set(raw) - {"volumes"})
        if unknown:
            raise ConfigurationError(
                f"{self.config}: unknown key {', '.join(map(repr, unknown))} "
                "(only [volumes.<name>] tables)"
            )
        volumes: dict[str, VolumeConfig] = {}
        for name, table in tables.items():
            if not re.fullmatch(VOLUME_NAME_PATTERN, name):
                raise ConfigurationError(f"{self.config}: bad volume name {name!r}")
            try:
                volumes[name] = VolumeConfig.model_validate(table)
            except ValidationError as exc:
                raise ConfigurationError(
                    f"{self.config}: volume {name!r}: {_one_line(exc)}"
                ) from exc
        return volumes

    def check_safe_to_start(self) -> None:
        """Refuse shipped placeholder or weak secrets outside dev."""
        if self.effective_env == "dev":
            return
        problems = []
        if _unusable_secret(self.jwt_secret):
            problems.append(f"STORAGE_JWT_SECRET must be set to at least {MIN_SECRET_BYTES} bytes")
        if any(_unusable_secret(secret) for secret in self.jwt_previous_secrets):
            problems.append("STORAGE_JWT_PREVIOUS_SECRETS must not list placeholders")
        if not self.service_keys or any(_unusable_secret(key) for key in self.service_keys):
            problems.append(
                f"STORAGE_SERVICE_KEYS must list keys of at least {MIN_SECRET_BYTES} bytes"
            )
        if any(_unusable_secret(secret) for secret in self.manager_api_secret):
            problems.append(
                f"STORAGE_MANAGER_API_SECRET must list secrets of at least {MIN_SECRET_BYTES} bytes"
            )
        if self.manager_api_enabled and _unusable_secret(self.manager_client_token_secret or ""):
            problems.append(
                "STORAGE_MANAGER_CLIENT_TOKEN_SECRET must be set to at least "
                f"{MIN_SECRET_BYTES} bytes when the Manager-facing API is on"
            )
        if problems:
            raise ConfigurationError(
                "refusing to start with placeholder secrets in prod: "
                + "; ".join(problems)
                + " (or set STORAGE_ENV=dev on a development machine)"
            )
