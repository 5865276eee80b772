"""Real PostgreSQL and Redis for the tests: found, or skipped loudly, or (in CI, with
STORAGE_REQUIRE_SERVICES=1) a failure."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

PG_HOST = os.environ.get("STORAGE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("STORAGE_TEST_PG_PORT", "5432"))
PG_DATABASE = os.environ.get("STORAGE_TEST_PG_DATABASE", "test")
PG_ADMIN_USER = os.environ.get("STORAGE_TEST_PG_USER", "postgres")
# Tests use this Redis, database and all (keys under a random prefix per test); set
# STORAGE_TEST_REDIS_URL to keep them away from a database something else uses.
REDIS_URL = os.environ.get("STORAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_REDIS = urlsplit(REDIS_URL)
REDIS_HOST, REDIS_PORT = _REDIS.hostname or "127.0.0.1", _REDIS.port or 6379


def services_required() -> bool:
    return os.environ.get("STORAGE_REQUIRE_SERVICES") == "1"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    if reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if services_required():
        pytest.fail(f"{message} and STORAGE_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(f"SKIPPED FOR MISSING SERVICE: {message}")


async def _admin(sql: list[str]) -> None:
    conn = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_ADMIN_USER, database=PG_DATABASE
    )
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A private role and a schema of the same name in the ``test`` database. PostgreSQL's
    default search_path starts with "$user", so everything the role creates lands there and
    parallel runs never see each other. Yields an asyncpg SQLAlchemy URL."""
    need_service("PostgreSQL", PG_HOST, PG_PORT)
    name = f"sp_test_{secrets.token_hex(6)}"
    asyncio.run(
        _admin(
            [
                f"CREATE ROLE {name} LOGIN",
                f"CREATE SCHEMA {name} AUTHORIZATION {name}",
            ]
        )
    )
    try:
        yield f"postgresql+asyncpg://{name}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}"
    finally:
        asyncio.run(_admin([f"DROP SCHEMA {name} CASCADE", f"DROP ROLE {name}"]))


def redis_url() -> str:
    need_service("Redis", REDIS_HOST, REDIS_PORT)
    return REDIS_URL


def redis_url_via(host_port: str) -> str:
    """STORAGE_TEST_REDIS_URL reached through ``host:port`` (a cuttable TCP proxy): same
    database, same credentials."""
    netloc = _REDIS.netloc
    credentials = netloc.rpartition("@")[0] + "@" if "@" in netloc else ""
    return urlunsplit(_REDIS._replace(netloc=credentials + host_port))


# A port nothing listens on, with the configured database and credentials.
UNREACHABLE_REDIS_URL = redis_url_via("127.0.0.1:1")
