"""A small stateful fake of the OneFS Platform API, for respx.

Shapes, with their origin:
- quota create body and ``{"id": …}`` answer, quota GET ``{"quotas": [...]}`` with
  ``thresholds``, ``usage.fslogical``/``fslogical_ready``, ``ready``: BAI + SDK
  (isilon-sdk ``QuotaQuotaCreateParams``/``QuotaQuota``);
- ``GET quota/quotas?path=&type=`` lookup, PUT/DELETE answering 204: SDK/doc;
- snapshots ``POST {name, path}`` → the snapshot, ``GET snapshots[/{id|name}]`` →
  ``{"snapshots": [...], "resume", "total"}``, fields ``id, name, path, created, size,
  state``: SDK (``SnapshotSnapshotExtended``);
- error body ``{"errors": [{"code", "message"}]}``: SDK/doc; the duplicate-quota status and
  code (409 ``AEC_CONFLICT``) are inferred;
- session log-in ``POST /session/1/session`` setting ``isisessid`` and ``isicsrf``: doc;
  401 for an expired session: inferred.

The filesystem side is real: the fake maps /ifs paths to the local volume (the mount), counts
a quota's usage by walking it, and a snapshot copies the tree to where OneFS shows it on the
mount, ``<root>/.snapshot/<name>/<rel>``."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

import httpx
import respx

from drivers.base import VolumeDriver
from drivers.dellemc import dellemc_driver

ENDPOINT = "https://onefs.test:8080"
IFS_PATH = "/ifs/data/sp"
USERNAME = "sp-admin"
PASSWORD = "s3cret-Pa55"
PASSWORD_ENV = "SP_TEST_ONEFS_PASSWORD"
QUOTAS = "/platform/12/quota/quotas"
SNAPSHOTS = "/platform/1/snapshot/snapshots"


Handler = Callable[..., httpx.Response]


def error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"errors": [{"code": code, "message": message}]})


@dataclass
class FakeOneFs:
    root: Path
    ifs_path: str = IFS_PATH
    session_auth: bool = False
    quotas: dict[str, dict[str, Any]] = field(default_factory=dict)
    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Knobs a test turns: usage not ready yet, numbers sent as strings, page size.
    usage_ready: bool = True
    string_numbers: bool = False
    page_size: int = 1000
    logins: int = 0
    sessions: set[str] = field(default_factory=set)
    requests: list[httpx.Request] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    def __post_init__(self) -> None:
        self.router = respx.Router(base_url=ENDPOINT, assert_all_called=False)
        guarded: dict[str, tuple[str, str, Any]] = {
            "identity": ("GET", "/platform/1/cluster/identity", self._identity),
            "list_quotas": ("GET", QUOTAS, self._list_quotas),
            "create_quota": ("POST", QUOTAS, self._create_quota),
            "get_quota": ("GET", rf"{QUOTAS}/(?P<qid>[^/]+)", self._get_quota),
            "put_quota": ("PUT", rf"{QUOTAS}/(?P<qid>[^/]+)", self._put_quota),
            "delete_quota": ("DELETE", rf"{QUOTAS}/(?P<qid>[^/]+)", self._delete_quota),
            "list_snapshots": ("GET", SNAPSHOTS, self._list_snapshots),
            "create_snapshot": ("POST", SNAPSHOTS, self._create_snapshot),
            "get_snapshot": ("GET", rf"{SNAPSHOTS}/(?P<sid>[^/]+)", self._get_snapshot),
            "delete_snapshot": ("DELETE", rf"{SNAPSHOTS}/(?P<sid>[^/]+)", self._delete_snapshot),
        }
        self.router.post("/session/1/session", name="login").mock(side_effect=self._login)
        self.handlers: dict[str, Handler] = {}
        for name, (method, pattern, handler) in guarded.items():
            self.handlers[name] = self._guard(handler)
            self.router.route(method=method, path__regex=f"^{pattern}$", name=name).mock(
                side_effect=self.handlers[name]
            )

    def replace(self, name: str, handler: Handler) -> respx.Route:
        """The endpoint ``name`` answered by ``handler`` (the original: ``handlers[name]``)."""
        route = self.router.routes[name]
        route.side_effect = handler
        return route

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.router.handler)

    # -- auth --------------------------------------------------------------------------------

    def _authorized(self, request: httpx.Request) -> bool:
        if self.session_auth:
            cookie = request.headers.get("Cookie", "")
            session = cookie.removeprefix("isisessid=")
            csrf: str | None = request.headers.get("X-CSRF-Token")
            return session in self.sessions and csrf == f"csrf-{session}"
        expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        sent: str | None = request.headers.get("Authorization")
        return sent == f"Basic {expected}"

    def _guard(self, handler: Handler) -> Handler:
        def guarded(request: httpx.Request, **kwargs: str) -> httpx.Response:
            self.requests.append(request)
            if not self._authorized(request):
                return error(401, "AEC_UNAUTHORIZED", "Authorization required")
            return handler(request, **kwargs)

        return guarded

    def _login(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content)
        if body.get("username") != USERNAME or body.get("password") != PASSWORD:
            return error(401, "AEC_UNAUTHORIZED", "Authentication failed")
        self.logins += 1
        session = f"sess{self.logins}"
        self.sessions.add(session)
        return httpx.Response(
            201,
            json={"services": ["platform", "namespace"], "timeout_absolute": 14400},
            headers=[
                ("Set-Cookie", f"isisessid={session}; path=/; HttpOnly; Secure"),
                ("Set-Cookie", f"isicsrf=csrf-{session}; path=/; Secure"),
            ],
        )

    def expire_sessions(self) -> None:
        self.sessions.clear()

    # -- helpers -----------------------------------------------------------------------------

    def local(self, ifs: str) -> Path:
        rel = PurePosixPath(ifs).relative_to(self.ifs_path)
        return self.root / str(rel)

    def _number(self, value: int | None) -> int | str | None:
        return str(value) if self.string_numbers and value is not None else value

    def _usage(self, ifs: str) -> int:
        total = 0
        for directory, _dirs, files in os.walk(self.local(ifs)):
            for name in files:
                total += (Path(directory) / name).lstat().st_size
        return total

    def _render_quota(self, quota: dict[str, Any]) -> dict[str, Any]:
        hard = quota["thresholds"].get("hard")
        return {
            **quota,
            "ready": self.usage_ready,
            "thresholds": {
                "hard": self._number(hard),
                "soft": None,
                "advisory": None,
                "soft_grace": None,
                "hard_exceeded": False,
                "soft_exceeded": False,
            },
            "usage": {
                "fslogical": self._number(self._usage(quota["path"])),
                "fslogical_ready": self.usage_ready,
                "applogical": 0,
                "physical": 0,
                "inodes": 1,
                "inodes_ready": self.usage_ready,
            },
        }

    def _page(
        self, key: str, items: list[dict[str, Any]], request: httpx.Request
    ) -> httpx.Response:
        start = int(request.url.params.get("resume") or 0)
        page = items[start : start + self.page_size]
        after = start + self.page_size
        resume = str(after) if after < len(items) else None
        return httpx.Response(200, json={key: page, "resume": resume, "total": len(items)})

    # -- endpoints ---------------------------------------------------------------------------

    def _identity(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"name": "fake-onefs", "guid": "0050569", "lnn": 1})

    def _list_quotas(self, request: httpx.Request) -> httpx.Response:
        path = request.url.params.get("path")
        kind = request.url.params.get("type")
        found = [
            self._render_quota(q)
            for q in self.quotas.values()
            if (path is None or q["path"] == path) and (kind is None or q["type"] == kind)
        ]
        return self._page("quotas", found, request)

    def _create_quota(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        path = body["path"]
        if not self.local(path).is_dir():
            return error(404, "AEC_NOT_FOUND", f"Path '{path}' not found")
        for quota in self.quotas.values():
            if quota["path"] == path and quota["include_snapshots"] == body["include_snapshots"]:
                return error(409, "AEC_CONFLICT", f"Quota already exists at {path}")
        quota_id = f"AABpAQEAAAAAAAAAAAAAQA{next(self._ids)}+AAA="  # quoted into URLs
        self.quotas[quota_id] = {
            "id": quota_id,
            "path": path,
            "type": body["type"],
            "enforced": body["enforced"],
            "include_snapshots": body["include_snapshots"],
            "thresholds_on": body["thresholds_on"],
            "container": False,
            "thresholds": dict(body["thresholds"]),
        }
        return httpx.Response(201, json={"id": quota_id})

    def _quota(self, qid: str) -> dict[str, Any] | None:
        return self.quotas.get(unquote(qid))

    def _get_quota(self, request: httpx.Request, qid: str) -> httpx.Response:
        quota = self._quota(qid)
        if quota is None:
            return error(404, "AEC_NOT_FOUND", "Quota not found")
        return httpx.Response(200, json={"quotas": [self._render_quota(quota)]})

    def _put_quota(self, request: httpx.Request, qid: str) -> httpx.Response:
        quota = self._quota(qid)
        if quota is None:
            return error(404, "AEC_NOT_FOUND", "Quota not found")
        body = json.loads(request.content)
        if "thresholds" in body:
            quota["thresholds"].update(body["thresholds"])
        if "enforced" in body:
            quota["enforced"] = body["enforced"]
        return httpx.Response(204)

    def _delete_quota(self, request: httpx.Request, qid: str) -> httpx.Response:
        if self.quotas.pop(unquote(qid), None) is None:
            return error(404, "AEC_NOT_FOUND", "Quota not found")
        return httpx.Response(204)

    def snapshot_dir(self, snapshot: dict[str, Any]) -> Path:
        rel = PurePosixPath(snapshot["path"]).relative_to(self.ifs_path)
        return self.root / ".snapshot" / str(snapshot["name"]) / str(rel)

    def _create_snapshot(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        name, path = body["name"], body["path"]
        if any(s["name"] == name for s in self.snapshots.values()):
            return error(409, "AEC_CONFLICT", f"Snapshot name {name} already in use")
        if not self.local(path).is_dir():
            return error(404, "AEC_NOT_FOUND", f"Path {path} not found")
        snapshot_id = next(self._ids)
        snapshot = {
            "id": snapshot_id,
            "name": name,
            "path": path,
            "created": int(time.time()),
            "size": 0,
            "shadow_bytes": 0,
            "has_locks": False,
            "state": "active",
            "schedule": None,
        }
        self.snapshots[snapshot_id] = snapshot
        shutil.copytree(self.local(path), self.snapshot_dir(snapshot), symlinks=True)
        return httpx.Response(201, json=self._render_snapshot(snapshot))

    def _render_snapshot(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        return {
            **snapshot,
            "created": self._number(snapshot["created"]),
            "size": self._number(snapshot["size"]),
        }

    def _find_snapshot(self, sid: str) -> dict[str, Any] | None:
        key = unquote(sid)
        for snapshot in self.snapshots.values():
            if str(snapshot["id"]) == key or snapshot["name"] == key:
                return snapshot
        return None

    def _list_snapshots(self, request: httpx.Request) -> httpx.Response:
        items = [self._render_snapshot(s) for s in self.snapshots.values()]
        return self._page("snapshots", items, request)

    def _get_snapshot(self, request: httpx.Request, sid: str) -> httpx.Response:
        snapshot = self._find_snapshot(sid)
        if snapshot is None:
            return error(404, "AEC_NOT_FOUND", f"Snapshot {unquote(sid)} not found")
        return httpx.Response(200, json={"snapshots": [self._render_snapshot(snapshot)]})

    def _delete_snapshot(self, request: httpx.Request, sid: str) -> httpx.Response:
        snapshot = self._find_snapshot(sid)
        if snapshot is None:
            return error(404, "AEC_NOT_FOUND", f"Snapshot {unquote(sid)} not found")
        del self.snapshots[snapshot["id"]]
        shutil.rmtree(self.root / ".snapshot" / snapshot["name"])
        return httpx.Response(204)


def options(**overrides: Any) -> dict[str, Any]:
    return {
        "endpoint": ENDPOINT,
        "username": USERNAME,
        "password_env": PASSWORD_ENV,
        "ifs_path": IFS_PATH,
        "retries": 2,
        **overrides,
    }


def fake_onefs_driver(root: Path, fake: FakeOneFs | None = None, **overrides: Any) -> VolumeDriver:
    """The driver against a fresh fake (or ``fake``) for the volume at ``root``."""
    os.environ.setdefault(PASSWORD_ENV, PASSWORD)
    if fake is None:
        fake = FakeOneFs(root=root.resolve())
    return dellemc_driver(root, options=options(**overrides), transport=fake.transport)
