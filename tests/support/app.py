"""Build the real app for a test and talk to it in-process."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
from fastapi import FastAPI

from app.auth.principal import Role
from app.auth.tokens import mint_user_token
from app.config import Settings
from app.main import create_app
from tests.support.observed import recorder
from tests.support.sqlite_template import migrated_sqlite

SERVICE_KEY = "test-service-key-0123456789abcdef0123456789"
JWT_SECRET = "test-jwt-secret-0123456789abcdef0123456789ab"
AUDIENCE = "storage-proxy"


def make_settings(
    *, data_dir: Path, database_url: str, redis_url: str | None = None, **overrides: object
) -> Settings:
    values: dict[str, object] = {
        "env": "prod",
        "data_dir": data_dir,
        "database_url": database_url,
        "redis_url": redis_url,
        "redis_key_prefix": f"sp-test-{secrets.token_hex(6)}:",
        "service_keys": [SERVICE_KEY],
        "jwt_secret": JWT_SECRET,
        # Tasks submitted here wake the runner at once; these bound the wait for work that
        # is not (trash, retries, other nodes' tasks). Shorter polls cost every test's app
        # CPU while it idles (0.1 s polls: an eighth of a core).
        "trash_purge_interval_seconds": 1.0,
        "task_poll_seconds": 0.5,
        "log_format": "text",
    }
    values.update(overrides)
    return Settings.model_validate(values)


def user_token(
    user: str,
    *groups: str,
    role: Role = Role.USER,
    ttl: int = 6 * 3600,
    managed_groups: tuple[str, ...] | list[str] = (),
) -> str:
    """A user's JWT. Long-lived by default: modules mint theirs at import, and the whole
    suite must run before any expires (tests of expiry pass their own ``ttl``)."""
    return mint_user_token(
        secret=JWT_SECRET,
        audience=AUDIENCE,
        user_id=user,
        groups=groups,
        role=role,
        ttl_seconds=ttl,
        managed_groups=managed_groups,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


SERVICE = bearer(SERVICE_KEY)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://proxy",
            event_hooks={"response": [recorder()]},
        ) as client:
            yield client


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings)) as client:
        yield client


@asynccontextmanager
async def client_with_volumes(
    tmp_path: Path, volumes_toml: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    """The app over the volumes of ``volumes_toml`` (a STORAGE_CONFIG file), on a migrated
    SQLite, with tasks picked up quickly."""
    config = tmp_path / "volumes.toml"
    config.write_text(volumes_toml)
    settings = make_settings(
        data_dir=tmp_path / "data",
        database_url=await anyio.to_thread.run_sync(migrated_sqlite, tmp_path / "meta.sqlite3"),
        config=config,
        task_poll_seconds=0.1,
    )
    async with client_for(settings) as client:
        yield client, settings
