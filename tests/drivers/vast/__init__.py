"""A small stateful fake of the VAST Management System API (respx), over a real directory
standing for the NFS mount: quota objects and snapshots kept in dicts, usage measured on the
directory, snapshots copied into the mount's ``.snapshot/<name>/`` as the cluster shows them.

Origins of the shapes (reference §4.5): token, quota objects, ``{"detail": "Not found."}``
and the bare JSON lists are **BAI**; ``Api-Token``/``X-Tenant-Name``/trailing ``/`` are
**SDK** (vastpy); the snapshot objects (``id, guid, name, path, expiration_time, locked``)
are **SDK** (VAST terraform provider models) but their answers are **unverified** (no
captured VMS response), and ``created`` is **inferred**; the "already exists" 400 body, the
SimpleJWT refresh (``{"refresh"}`` → ``{"access"}``) and its 401 body are **inferred**."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import respx

from drivers.driver import Driver
from drivers.vast import vast_driver

ENDPOINT = "https://vms.example"
BASE = "/proxy"  # the cluster's path of the mount root
USERNAME = "sp-admin"
PASSWORD = "pw-Zq8-very-secret"
API_TOKEN = "tok-Wm3-very-secret"
SNAPSHOT_DIR = ".snapshot"
STAGING_DIR = ".sp-staging"

Injected = httpx.Response | Exception


def problem(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


@dataclass
class FakeVast:
    mount: Path
    base: str = BASE
    version: str = "v2"
    api_token: str | None = None
    quotas: dict[int, dict[str, Any]] = field(default_factory=dict)
    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)
    access: set[str] = field(default_factory=set)
    refresh: set[str] = field(default_factory=set)
    logins: int = 0
    refreshes: int = 0
    calls: list[tuple[str, str]] = field(default_factory=list)
    headers: list[httpx.Headers] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    # (method, path) → answers given before the fake's own, in order (a response or an
    # exception raised as the transport's).
    injected: dict[tuple[str, str], list[Injected]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.router = respx.Router(base_url=ENDPOINT, assert_all_called=False)
        self.router.route().mock(side_effect=self._handle)

    @property
    def prefix(self) -> str:
        return f"/api/{self.version}"

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.router.handler)

    def inject(self, method: str, path: str, *answers: Injected) -> None:
        self.injected.setdefault((method, self.prefix + path), []).extend(answers)

    def count(self, method: str, path: str) -> int:
        return self.calls.count((method, self.prefix + path))

    def expire_access(self) -> None:
        self.access.clear()

    def expire_all(self) -> None:
        self.access.clear()
        self.refresh.clear()

    # --- the mount ------------------------------------------------------------------------

    def local(self, path: str) -> Path:
        relative = Path(path.rstrip("/")).relative_to(self.base)
        return self.mount / relative

    def used_bytes(self, directory: Path) -> int:
        total = 0
        for dirpath, dirnames, filenames in os.walk(directory):
            if Path(dirpath) == directory and SNAPSHOT_DIR in dirnames:
                dirnames.remove(SNAPSHOT_DIR)  # the cluster's view, not data
            for name in filenames:
                total += (Path(dirpath) / name).lstat().st_size
        return total

    # --- dispatch ---------------------------------------------------------------------------

    def _handle(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, request.url.path
        self.calls.append((method, path))
        self.headers.append(request.headers)
        body = json.loads(request.content) if request.content else None
        self.bodies.append(body)
        queued = self.injected.get((method, path))
        if queued:
            answer = queued.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        if not path.startswith(self.prefix + "/") or not path.endswith("/"):
            return problem(404, {"detail": "Not found."})
        route = path[len(self.prefix) + 1 : -1].split("/")
        if route == ["token"] and method == "POST":
            return self._login(body)
        if route == ["token", "refresh"] and method == "POST":
            return self._refresh(body)
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        handler = self._routes().get((method, route[0], len(route)))
        if handler is None:
            return problem(405, {"detail": f'Method "{method}" not allowed.'})
        return handler(request, body, route[1:])

    def _routes(
        self,
    ) -> dict[tuple[str, str, int], Callable[[httpx.Request, Any, list[str]], httpx.Response]]:
        return {
            ("GET", "clusters", 1): lambda r, b, a: httpx.Response(
                200, json=[{"id": 1, "name": "vast01", "state": "ONLINE"}]
            ),
            ("GET", "quotas", 1): self._quota_list,
            ("POST", "quotas", 1): self._quota_create,
            ("GET", "quotas", 2): self._quota_get,
            ("PATCH", "quotas", 2): self._quota_patch,
            ("DELETE", "quotas", 2): self._quota_delete,
            ("GET", "snapshots", 1): self._snapshot_list,
            ("POST", "snapshots", 1): self._snapshot_create,
            ("DELETE", "snapshots", 2): self._snapshot_delete,
        }

    # --- auth -------------------------------------------------------------------------------

    def _login(self, body: Any) -> httpx.Response:
        if body != {"username": USERNAME, "password": PASSWORD}:
            return problem(401, {"detail": "No active account found with the given credentials"})
        self.logins += 1
        return httpx.Response(200, json=self._tokens(refresh=True))

    def _refresh(self, body: Any) -> httpx.Response:
        token = body.get("refresh") if isinstance(body, dict) else None
        if token not in self.refresh:
            return problem(
                401, {"detail": "Token is invalid or expired", "code": "token_not_valid"}
            )
        self.refreshes += 1
        return httpx.Response(200, json=self._tokens(refresh=False))

    def _tokens(self, *, refresh: bool) -> dict[str, str]:
        n = next(self._ids)
        tokens = {"access": f"access-{n}"}
        self.access.add(tokens["access"])
        if refresh:
            tokens["refresh"] = f"refresh-{n}"
            self.refresh.add(tokens["refresh"])
        return tokens

    def _authenticate(self, request: httpx.Request) -> httpx.Response | None:
        given = request.headers.get("Authorization", "")
        if self.api_token is not None and given == f"Api-Token {self.api_token}":
            return None
        if given.startswith("Bearer ") and given[len("Bearer ") :] in self.access:
            return None
        return problem(
            401, {"detail": "Given token not valid for any token type", "code": "token_not_valid"}
        )

    # --- quotas -----------------------------------------------------------------------------

    def _quota(self, quota: dict[str, Any]) -> dict[str, Any]:
        local = self.local(quota["path"])
        used = self.used_bytes(local) if local.is_dir() else 0
        percent = used * 100 // quota["hard_limit"] if quota.get("hard_limit") else 0
        return {**quota, "used_capacity": used, "used_inodes": 1, "percent_capacity": percent}

    def add_quota(self, path: str, hard_limit: int) -> int:
        quota_id = next(self._ids)
        self.quotas[quota_id] = {
            "id": quota_id,
            "guid": f"guid-{quota_id}",
            "name": f"made-elsewhere-{quota_id}",
            "path": path,
            "state": "OK",
            "soft_limit": hard_limit,
            "hard_limit": hard_limit,
            "soft_limit_inodes": None,
            "hard_limit_inodes": None,
            "grace_period": "7 00:00:00",
        }
        return quota_id

    def _quota_list(self, request: httpx.Request, body: Any, args: list[str]) -> httpx.Response:
        path = request.url.params.get("path")
        found = [self._quota(q) for q in self.quotas.values() if path in (None, q["path"])]
        return httpx.Response(200, json=found)

    def _quota_create(self, request: httpx.Request, body: Any, args: list[str]) -> httpx.Response:
        if any(q["path"] == body["path"] for q in self.quotas.values()):
            # Inferred shape: BAI only says "400 when a quota exists for that path".
            return problem(400, {"path": ["quota with this path already exists."]})
        if not self.local(body["path"]).is_dir() and body.get("create_dir") is False:
            return problem(400, {"detail": f"path {body['path']} does not exist"})
        quota_id = self.add_quota(body["path"], body["hard_limit"])
        self.quotas[quota_id].update(name=body["name"], soft_limit=body["soft_limit"])
        return httpx.Response(201, json=self._quota(self.quotas[quota_id]))

    def _quota_get(self, request: httpx.Request, body: Any, args: list[str]) -> httpx.Response:
        quota = self.quotas.get(int(args[0]))
        if quota is None:
            return problem(404, {"detail": "Not found."})
        return httpx.Response(200, json=self._quota(quota))

    def _quota_patch(self, request: httpx.Request, body: Any, args: list[str]) -> httpx.Response:
        quota = self.quotas.get(int(args[0]))
        if quota is None:
            return problem(404, {"detail": "Not found."})
        quota.update(body)
        return httpx.Response(200, json=self._quota(quota))

    def _quota_delete(self, request: httpx.Request, body: Any, args: list[str]) -> httpx.Response:
        if self.quotas.pop(int(args[0]), None) is None:
            return problem(404, {"detail": "Not found."})
        return httpx.Response(204)

    # --- snapshots (unverified shapes) --------------------------------------------------------

    def _snapshot_list(self, request: httpx.Request, body: Any, args: list[str]) -> httpx.Response:
        path = request.url.params.get("path")
        found = [s for s in self.snapshots.values() if path in (None, s["path"])]
        return httpx.Response(200, json=found)

    def add_snapshot(self, name: str, path: str) -> dict[str, Any]:
        snapshot_id = next(self._ids)
        snapshot = {
            "id": snapshot_id,
            "guid": f"guid-{snapshot_id}",
            "name": name,
            "path": path,
            "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "expiration_time": None,
            "locked": False,
        }
        self.snapshots[snapshot_id] = snapshot
        source = self.local(path)
        if source.is_dir():
            shutil.copytree(
                source,
                source / SNAPSHOT_DIR / name,
                symlinks=True,
                ignore=lambda d, names: [SNAPSHOT_DIR] if Path(d) == source else [],
            )
        return snapshot

    def _snapshot_create(
        self, request: httpx.Request, body: Any, args: list[str]
    ) -> httpx.Response:
        if any(s["name"] == body["name"] for s in self.snapshots.values()):
            return problem(400, {"name": ["snapshot with this name already exists."]})
        return httpx.Response(201, json=self.add_snapshot(body["name"], body["path"]))

    def _snapshot_delete(
        self, request: httpx.Request, body: Any, args: list[str]
    ) -> httpx.Response:
        snapshot = self.snapshots.pop(int(args[0]), None)
        if snapshot is None:
            return problem(404, {"detail": "Not found."})
        shutil.rmtree(self.local(snapshot["path"]) / SNAPSHOT_DIR / snapshot["name"])
        return httpx.Response(204)


def options(secret_dir: Path, **extra: Any) -> dict[str, Any]:
    """Options for a driver logging in as ``USERNAME``, its password in a file."""
    secret_dir.mkdir(parents=True, exist_ok=True)
    secret = secret_dir / "vast-password"
    secret.write_text(PASSWORD + "\n")
    return {
        "endpoint": ENDPOINT,
        "storage_base_path": BASE,
        "username": USERNAME,
        "password_file": str(secret),
        **extra,
    }


def fake_driver(root: Path, **extra: Any) -> tuple[Driver, FakeVast]:
    """A vast driver on ``root`` against a fake VMS whose mount is ``root``."""
    fake = FakeVast(root.resolve())
    driver = vast_driver(root, options=options(root.parent, **extra), transport=fake.transport())
    return driver, fake
