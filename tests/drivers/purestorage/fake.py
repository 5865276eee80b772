"""A small stateful FlashBlade REST 2.x, behind a respx router: log-in by API token, session
tokens that can be expired, the configured file system, and file-system snapshots that are
paged, filtered, destroyed and eradicated, each also made on disk under the mount's
``.snapshot/<fs>.<suffix>/`` (a copy of the mount taken when the snapshot is), as the array
shows them over NFS.

Shapes and their origin:
- log-in (``POST /api/login``, header ``api-token`` → response header ``x-auth-token``,
  body ``{"username": …}``): BAI and the vendor reference (§4.2 of the project's notes);
- ``file-systems`` and ``file-system-snapshots`` items, ``continuation_token``,
  ``total_item_count``, ``total``: SDK (py-pure-client ``FB_2_12`` models), values
  illustrative;
- error bodies ``{"errors": [{"context", "message"}]}`` and their status codes (400 for an
  unknown name, 401 for a stale session): inferred, not confirmed by a captured answer."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import respx

from drivers.driver import Driver
from drivers.purestorage import purestorage_driver

ENDPOINT = "https://fb.example"
API_TOKEN = "T-2f1c9a7e-api-token-never-logged"
TOKEN_ENV = "SP_TEST_FLASHBLADE_API_TOKEN"
FILE_SYSTEM = "bai-fs"
VERSION = "2.12"

Fault = httpx.Response | Exception


def error(status: int, message: str, context: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"message": message}
    if context is not None:
        body["context"] = context
    return httpx.Response(status, json={"errors": [body]})  # inferred shape


def file_system_item(name: str) -> dict[str, Any]:
    # SDK: FB_2_12 FileSystem (values illustrative).
    return {
        "name": name,
        "id": "9f6a3c1e-0000-4000-8000-00000000fs01",
        "created": 1690000000000,
        "destroyed": False,
        "provisioned": 109951162777600,
        "hard_limit_enabled": False,
        "snapshot_directory_enabled": True,
        "nfs": {"v3_enabled": True, "v4_1_enabled": True, "rules": "*(rw,no_root_squash)"},
        "space": {
            "virtual": 5368709120,
            "unique": 4294967296,
            "snapshots": 0,
            "total_physical": 4294967296,
            "data_reduction": 1.25,
        },
    }


class FakeFlashBlade:
    def __init__(
        self,
        *,
        mount_root: Path,
        file_system: str = FILE_SYSTEM,
        api_token: str = API_TOKEN,
        page_size: int = 2,
        snapshot_directory: str = ".snapshot",
    ) -> None:
        self.mount_root = mount_root
        self.file_system = file_system
        self.api_token = api_token
        self.page_size = page_size
        self.snapshot_directory = snapshot_directory
        self.sessions: set[str] = set()
        self.logins = 0
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.file_system_answer: Callable[[], dict[str, Any]] | None = None
        self.login_answer: Callable[[httpx.Request], httpx.Response] | None = None
        self._faults: list[tuple[str, str, Fault]] = []
        self._ids = itertools.count(1)
        self.router = respx.Router(base_url=ENDPOINT, assert_all_called=False)
        self.router.route().mock(side_effect=self._dispatch)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.router.handler)

    @property
    def requests(self) -> list[httpx.Request]:
        return [call.request for call in self.router.calls]

    def requests_to(self, method: str, resource: str) -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if r.method == method and r.url.path == f"/api/{VERSION}/{resource}"
        ]

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def fail_next(self, method: str, resource: str, *faults: Fault) -> None:
        """The next calls of ``method`` on ``resource`` (after authentication) get these."""
        self._faults.extend((method, resource, fault) for fault in faults)

    def snapshot_dir(self, full_name: str) -> Path:
        return self.mount_root / self.snapshot_directory / full_name

    # -- the API --------------------------------------------------------------------------

    def _dispatch(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/api/login":
            return self._login(request)
        prefix = f"/api/{VERSION}/"
        if not path.startswith(prefix):
            return error(404, f"no such path {path}")
        if request.headers.get("x-auth-token") not in self.sessions:
            return error(401, "Session token is invalid or has expired.")
        resource = path.removeprefix(prefix)
        for index, (method, where, fault) in enumerate(self._faults):
            if method == request.method and where == resource:
                del self._faults[index]
                if isinstance(fault, Exception):
                    raise fault
                return fault
        query = {
            key: values[-1] for key, values in parse_qs(urlsplit(str(request.url)).query).items()
        }
        handler = {
            ("GET", "file-systems"): self._file_systems,
            ("GET", "arrays"): self._arrays,
            ("GET", "file-system-snapshots"): self._list_snapshots,
            ("POST", "file-system-snapshots"): self._create_snapshot,
            ("PATCH", "file-system-snapshots"): self._patch_snapshot,
            ("DELETE", "file-system-snapshots"): self._delete_snapshot,
        }.get((request.method, resource))
        if handler is None:
            return error(404, f"no {request.method} {resource}")
        return handler(request, query)

    def _login(self, request: httpx.Request) -> httpx.Response:
        if self.login_answer is not None:
            return self.login_answer(request)
        if request.headers.get("api-token") != self.api_token:
            return error(401, "Invalid API token.")
        self.logins += 1
        session = f"session-{self.logins}-{os.urandom(4).hex()}"
        self.sessions.add(session)
        return httpx.Response(200, headers={"x-auth-token": session}, json={"username": "pureuser"})

    def _file_systems(self, request: httpx.Request, query: dict[str, str]) -> httpx.Response:
        if self.file_system_answer is not None:
            return httpx.Response(200, json=self.file_system_answer())
        name = query.get("names")
        if name != self.file_system:
            return error(400, "File system does not exist.", context=name)
        item = file_system_item(name)
        return httpx.Response(
            200,
            json={
                "continuation_token": None,
                "total_item_count": 1,
                "items": [item],
                "total": None,  # BAI crashed on this; it may be null or absent
            },
        )

    def _arrays(self, request: httpx.Request, query: dict[str, str]) -> httpx.Response:
        item = {"name": "fb01", "id": "a1", "os": "Purity//FB", "version": "4.1.0"}
        return httpx.Response(200, json={"continuation_token": None, "items": [item]})

    def _list_snapshots(self, request: httpx.Request, query: dict[str, str]) -> httpx.Response:
        if query.get("names_or_owner_names") != self.file_system:
            return error(
                400, "File system does not exist.", context=query.get("names_or_owner_names")
            )
        items = sorted(self.snapshots.values(), key=lambda s: s["name"])
        if query.get("destroyed") == "false":
            items = [s for s in items if not s["destroyed"]]
        elif query.get("destroyed") is not None:
            return error(400, "Invalid value for destroyed.")
        if "filter" in query:
            matcher = _filter(query["filter"])
            if matcher is None:
                return error(400, f"Invalid filter {query['filter']!r}.")
            items = [s for s in items if matcher(s)]
        start = int(query.get("continuation_token", "0"))
        page = items[start : start + self.page_size]
        more = start + self.page_size < len(items)
        return httpx.Response(
            200,
            json={
                "continuation_token": str(start + self.page_size) if more else None,
                "total_item_count": len(items),
                "items": page,
            },  # no "total" at all on this one
        )

    def _create_snapshot(self, request: httpx.Request, query: dict[str, str]) -> httpx.Response:
        if query.get("source_names") != self.file_system:
            return error(400, "File system does not exist.", context=query.get("source_names"))
        body = _json(request)
        suffix = body.get("suffix") if isinstance(body, dict) else None
        if not isinstance(suffix, str) or not re.fullmatch(
            r"[A-Za-z0-9][A-Za-z0-9-]{0,62}", suffix
        ):
            return error(400, "Invalid suffix.", context=str(suffix))
        name = f"{self.file_system}.{suffix}"
        if name in self.snapshots:
            return error(400, "Snapshot already exists.", context=name)
        # SDK: FB_2_12 FileSystemSnapshot.
        item = {
            "name": name,
            "id": f"snap-{next(self._ids)}",
            "created": int(time.time() * 1000) + len(self.snapshots),
            "destroyed": False,
            "owner": {"name": self.file_system, "id": "fs01"},
            "owner_destroyed": False,
            "source": {"name": self.file_system, "id": "fs01"},
            "suffix": suffix,
            "time_remaining": None,
            "policy": None,
        }
        self.snapshots[name] = item
        top = str(self.mount_root)
        shutil.copytree(
            self.mount_root,
            self.snapshot_dir(name),
            symlinks=True,
            ignore=lambda d, names: [self.snapshot_directory] if d == top else [],
        )
        return httpx.Response(200, json={"items": [item]})

    def _patch_snapshot(self, request: httpx.Request, query: dict[str, str]) -> httpx.Response:
        name = query.get("names", "")
        if name not in self.snapshots:
            return error(400, "Snapshot does not exist.", context=name)
        body = _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("destroyed"), bool):
            return error(400, "Invalid body.")
        self.snapshots[name]["destroyed"] = body["destroyed"]
        return httpx.Response(200, json={"items": [self.snapshots[name]]})

    def _delete_snapshot(self, request: httpx.Request, query: dict[str, str]) -> httpx.Response:
        name = query.get("names", "")
        if name not in self.snapshots:
            return error(400, "Snapshot does not exist.", context=name)
        if not self.snapshots[name]["destroyed"]:
            return error(400, "Snapshot must be destroyed before it can be eradicated.", name)
        del self.snapshots[name]
        shutil.rmtree(self.snapshot_dir(name), ignore_errors=True)
        return httpx.Response(200)


def _json(request: httpx.Request) -> Any:
    try:
        return json.loads(request.content or b"null")
    except ValueError:
        return None


def _filter(text: str) -> Callable[[dict[str, Any]], bool] | None:
    """The two forms the driver sends: ``suffix='<prefix>*'`` and ``name='<name>'``."""
    match = re.fullmatch(r"(suffix|name)='([^'*]*)(\*?)'", text)
    if match is None:
        return None
    field, value, wildcard = match.groups()
    if wildcard:
        return lambda s: str(s[field]).startswith(value)
    return lambda s: s[field] == value


def fake_driver(root: Path, **options: Any) -> tuple[Driver, FakeFlashBlade]:
    """The driver on ``root`` (also the mount root, unless given) against a new fake."""
    os.environ.setdefault(TOKEN_ENV, API_TOKEN)
    mount_root = Path(options.get("mount_root", root))
    fake = FakeFlashBlade(mount_root=mount_root.resolve())
    settings: dict[str, Any] = {
        "endpoint": ENDPOINT,
        "file_system": FILE_SYSTEM,
        "api_token_env": TOKEN_ENV,
        "retries": 1,
        **options,
    }
    return purestorage_driver(root, options=settings, transport=fake.transport), fake
