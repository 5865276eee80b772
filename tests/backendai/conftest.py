"""The Backend.AI contract suite: real HTTP against our server's two listeners, on SQLite and on
PostgreSQL, or (``STORAGE_TEST_BACKENDAI_REFERENCE=1``) against the reference Backend.AI
storage proxy 23.9.10, started beside this project on loopback.

Against the reference, tests marked ``ours_better`` (where ours is deliberately better: no
listing cap, quotas that hold…) and ``ours_only`` (they look through our own ``/v1`` API) are
skipped; README lists the first kind."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.app import JWT_SECRET, SERVICE_KEY
from tests.support.server import Server, clean_environment, free_port, serving
from tests.support.services import postgres_schema

MANAGER_SECRET = "test-manager-secret-0123456789abcdef0123456789"
CLIENT_TOKEN_SECRET = "test-client-token-secret-0123456789abcdef0123"
AUTH_HEADER = "X-BackendAI-Storage-Auth-Token"

REFERENCE = os.environ.get("STORAGE_TEST_BACKENDAI_REFERENCE") == "1"
REFERENCE_MANAGER = f"http://127.0.0.1:{os.environ.get('REF_MANAGER_PORT', '16022')}"
REFERENCE_CLIENT = f"http://127.0.0.1:{os.environ.get('REF_CLIENT_PORT', '16021')}"
REFERENCE_SECRET = os.environ.get("REF_MANAGER_SECRET", "reference-manager-secret")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ours_better(reason): ours deliberately differs from the reference"
    )
    config.addinivalue_line("markers", "ours_only(reason): looks through our own /v1 API")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not REFERENCE:
        return
    for item in items:
        for name in ("ours_better", "ours_only"):
            marker = item.get_closest_marker(name)
            if marker is not None:
                reason = marker.args[0] if marker.args else name
                item.add_marker(pytest.mark.skip(reason=f"against the reference: {reason}"))


@dataclass
class Target:
    """One storage proxy as the Manager and the 23.9 client see it."""

    manager_url: str
    client_url: str
    secret: str
    volume: str
    is_reference: bool
    server: Server | None = None
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(timeout=60)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """A Manager call: the auth header, and a JSON body even on GET."""
        headers = {AUTH_HEADER: self.secret}
        if body is None:
            return self.http.request(method, self.manager_url + path, headers=headers)
        return self.http.request(method, self.manager_url + path, headers=headers, json=body)

    def v1(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Our own API, with the service key (never on the reference)."""
        assert not self.is_reference
        headers = {"Authorization": f"Bearer {SERVICE_KEY}", **kwargs.pop("headers", {})}
        return self.http.request(method, self.client_url + path, headers=headers, **kwargs)

    def new_vfid(self, scope: str | None = None) -> str:
        scope = scope or f"user:{uuid.uuid4()}"
        return f"{scope}/{uuid.uuid4().hex}"

    def create_folder(self, vfid: str | None = None, **options: Any) -> str:
        vfid = vfid or self.new_vfid()
        reply = self.call(
            "POST", "/folder/create", {"volume": self.volume, "vfid": vfid, "options": options}
        )
        assert reply.is_success, reply.text
        return vfid


def _our_server(tmp: Path, database_url: str) -> Iterator[Target]:
    manager_port = free_port()
    env = clean_environment(
        STORAGE_ENV="prod",
        STORAGE_DATA_DIR=str(tmp / "data"),
        STORAGE_DATABASE_URL=database_url,
        STORAGE_SERVICE_KEYS=SERVICE_KEY,
        STORAGE_JWT_SECRET=JWT_SECRET,
        STORAGE_MANAGER_API_SECRET=f"{secrets.token_hex(24)},{MANAGER_SECRET}",
        STORAGE_MANAGER_API_PORT=str(manager_port),
        STORAGE_MANAGER_CLIENT_TOKEN_SECRET=CLIENT_TOKEN_SECRET,
        # The defaults would do (work on this node is woken at once): these keep the idle
        # servers, which live for the whole session, from polling the database all along.
        STORAGE_TRASH_PURGE_INTERVAL_SECONDS="5",
        STORAGE_TASK_POLL_SECONDS="1",
        STORAGE_LOG_FORMAT="text",
    )
    with serving(cwd=tmp, env=env, extra_args=["--migrate"], ready_within=30) as server:
        target = Target(
            manager_url=f"http://127.0.0.1:{manager_port}",
            client_url=server.base_url,
            secret=MANAGER_SECRET,
            volume="local",
            is_reference=False,
            server=server,
        )
        try:
            yield target
        finally:
            target.http.close()


@pytest.fixture(scope="session", params=["reference"] if REFERENCE else ["sqlite", "postgresql"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """Ours on SQLite and on PostgreSQL; or the reference."""
    if request.param == "reference":
        reference = Target(
            manager_url=REFERENCE_MANAGER,
            client_url=REFERENCE_CLIENT,
            secret=REFERENCE_SECRET,
            volume="local",
            is_reference=True,
        )
        yield reference
        reference.http.close()
        return
    tmp = tmp_path_factory.mktemp("bai")
    if request.param == "sqlite":
        yield from _our_server(tmp, f"sqlite+aiosqlite:///{tmp / 'meta.sqlite3'}")
        return
    with postgres_schema() as url:
        yield from _our_server(tmp, url)
