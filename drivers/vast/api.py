"""The VAST Management System (VMS) REST API, as this driver uses it: authentication, quota
objects, snapshots and a cheap health probe, over the shared ``VendorClient``.

Shapes (reference §4.5, vastpy 0.3.22, the VAST terraform provider's generated models):

- ``POST /api/<v>/token/`` ``{"username", "password"}`` → ``{"access", "refresh"}`` (JWTs),
  then ``Authorization: Bearer <access>``; ``POST /api/<v>/token/refresh/`` ``{"refresh"}``
  → ``{"access"}`` (SimpleJWT style; Backend.AI posts ``refresh_token=``, which the
  reference marks as probably wrong). Logged in once, renewed on 401: never a log-in per call
  (Backend.AI's ``vast_force_login`` default).
- Or an API token: ``Authorization: Api-Token <token>`` (vastpy). ``X-Tenant-Name`` when a
  tenant is configured (vastpy).
- Every URL ends with ``/`` (vastpy).
- Quotas: ``GET/POST /quotas/``, ``GET/PATCH/DELETE /quotas/{id}/``; a quota carries
  ``id, name, path, hard_limit, soft_limit, used_capacity, used_inodes`` (BAI, SDK).
- Snapshots: ``GET/POST /snapshots/``, ``DELETE /snapshots/{id}/`` with ``{"name", "path"}``
  (terraform provider model: ``id, guid, name, path, expiration_time, tenant_id, locked``).
  **Unverified**: no source recorded a real VMS snapshot answer; the creation time field
  (``created``) is inferred and optional here.
- Errors: Django REST framework bodies: ``{"detail": "Not found."}``, or field errors
  ``{"hard_limit": ["…"]}``, or a list of strings (inferred from DRF).

A list answer is a bare JSON list, or a DRF page ``{"results": [...], "next": url}``; both
are read, the pages followed."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from drivers.errors import BackendApiError
from drivers.rest.client import LoginAuth, VendorClient, generic_message, require

VENDOR = "VAST"
MAX_PAGES = 100


def vast_message(body: Any) -> tuple[str | None, str | None]:
    """(message, code) of a VMS error body: DRF's ``{"detail"}``, field errors
    ``{"field": ["…"]}``, a list of strings, or the generic shapes."""
    if isinstance(body, list):
        texts = [item for item in body if isinstance(item, str)]
        return ("; ".join(texts) or None), None
    if not isinstance(body, dict):
        return None, None
    detail = body.get("detail")
    if isinstance(detail, str):
        code = body.get("code")
        return detail, None if code is None else str(code)
    message, code = generic_message(body)
    if message is not None:
        return message, code
    fields = []
    for name, value in body.items():
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            fields.append(f"{name}: {' '.join(value)}")
        elif isinstance(value, str):
            fields.append(f"{name}: {value}")
    return ("; ".join(fields) or None), None


class VastTokenAuth(LoginAuth):
    """JWT log-in once; on 401 the refresh token first, a new log-in when that is refused."""

    def __init__(self, *, prefix: str, username: str, password: SecretStr) -> None:
        """``prefix``: the API's absolute URL, ``https://vms/api/v2``."""
        super().__init__(VENDOR)
        self._prefix = prefix
        self._username = username
        self._password = password
        self._refresh: str | None = None

    def __repr__(self) -> str:
        return f"VastTokenAuth(username={self._username!r}, password=**********)"

    def login_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            f"{self._prefix}/token/",
            json={"username": self._username, "password": self._password.get_secret_value()},
        )

    def session_from(self, response: httpx.Response) -> str:
        body = _json(response)
        access = require(body, "access", str, vendor=VENDOR)
        refresh = body.get("refresh") if isinstance(body, dict) else None
        if isinstance(refresh, str) and refresh:  # a refresh answer may keep the old one
            self._refresh = refresh
        return str(access)

    def apply(self, request: httpx.Request, session: str) -> None:
        request.headers["Authorization"] = f"Bearer {session}"

    def refresh_request(self) -> httpx.Request | None:
        if self._refresh is None:
            return None
        return httpx.Request(
            "POST", f"{self._prefix}/token/refresh/", json={"refresh": self._refresh}
        )


class VastApiTokenAuth(httpx.Auth):
    """``Authorization: Api-Token <token>`` on every call (vastpy); nothing to renew."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "VastApiTokenAuth(token=**********)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Api-Token {self._token.get_secret_value()}"
        yield request


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise BackendApiError(
            f"{VENDOR} API: malformed answer: the log-in answer is not JSON"
        ) from None


@dataclass(frozen=True, slots=True)
class Quota:
    id: int
    path: str
    hard_limit: int | None
    used_capacity: int | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: int
    name: str
    path: str
    created: str | None


def same_path(a: str, b: str) -> bool:
    """VMS paths compared without a trailing slash (snapshot paths may carry one)."""
    return a.rstrip("/") == b.rstrip("/")


class VastApi:
    """The VMS calls the driver makes, their answers checked (a malformed one is a
    ``BackendApiError`` naming what is wrong, never a KeyError of ours)."""

    def __init__(self, client: VendorClient, *, prefix: str) -> None:
        self.client = client
        self.prefix = prefix  # "/api/v2"

    def url(self, *parts: str | int) -> str:
        return "/".join([self.prefix, *(str(p) for p in parts)]) + "/"

    # --- listing ---------------------------------------------------------------------------

    async def _list(self, collection: str, params: dict[str, str]) -> list[dict[str, Any]]:
        path = self.url(collection)
        body = await self.client.json("GET", path, params=params)
        items: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if isinstance(body, list):
                page, following = body, None
            elif isinstance(body, dict) and isinstance(body.get("results"), list):
                page, following = body["results"], body.get("next")
            else:
                raise self.client.malformed("GET", path, "not a list")
            for item in page:
                if not isinstance(item, dict):
                    raise self.client.malformed("GET", path, "an entry is not an object")
                items.append(item)
            if not isinstance(following, str) or not following:
                return items
            body = await self.client.json("GET", following)
        raise self.client.malformed("GET", path, f"more than {MAX_PAGES} pages")

    # --- quotas ----------------------------------------------------------------------------

    async def find_quota(self, path: str) -> Quota | None:
        """The quota object on exactly ``path`` (the filter is applied here too: a VMS that
        ignored it, or matched by prefix, does not make us adopt another directory's)."""
        found = [
            quota
            for quota in map(self._quota, await self._list("quotas", {"path": path}))
            if same_path(quota.path, path)
        ]
        return found[0] if found else None

    async def get_quota(self, quota_id: int) -> Quota:
        return self._quota(await self.client.json("GET", self.url("quotas", quota_id)))

    async def create_quota(self, *, name: str, path: str, limit: int) -> Quota:
        body = {
            "name": name,
            "path": path,
            "create_dir": False,  # the proxy made the directory over the mount
            "soft_limit": limit,
            "hard_limit": limit,
        }
        return self._quota(await self.client.json("POST", self.url("quotas"), json=body))

    async def update_quota(self, quota_id: int, *, limit: int) -> None:
        # Setting the same limits twice is the same: PATCH of absolute values is idempotent.
        await self.client.json(
            "PATCH",
            self.url("quotas", quota_id),
            json={"soft_limit": limit, "hard_limit": limit},
            idempotent=True,
        )

    async def delete_quota(self, quota_id: int) -> None:
        await self.client.send("DELETE", self.url("quotas", quota_id))

    def _quota(self, body: Any) -> Quota:
        hard = body.get("hard_limit") if isinstance(body, dict) else None
        used = body.get("used_capacity") if isinstance(body, dict) else None
        for name, value in (("hard_limit", hard), ("used_capacity", used)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise BackendApiError(
                    f"{VENDOR} API: malformed answer: quota {name} is {type(value).__name__}"
                )
        return Quota(
            id=require(body, "id", int, vendor=VENDOR),
            path=require(body, "path", str, vendor=VENDOR),
            hard_limit=hard,
            used_capacity=used,
        )

    # --- snapshots (shapes unverified, see the module docstring) ----------------------------

    async def snapshots(self, path: str) -> list[Snapshot]:
        """The snapshots taken of exactly ``path``."""
        return [
            snapshot
            for snapshot in map(self._snapshot, await self._list("snapshots", {"path": path}))
            if same_path(snapshot.path, path)
        ]

    async def create_snapshot(self, *, name: str, path: str) -> Snapshot:
        body = await self.client.json(
            "POST", self.url("snapshots"), json={"name": name, "path": path}
        )
        return self._snapshot(body)

    async def delete_snapshot(self, snapshot_id: int) -> None:
        await self.client.send("DELETE", self.url("snapshots", snapshot_id))

    def _snapshot(self, body: Any) -> Snapshot:
        created = body.get("created") if isinstance(body, dict) else None
        return Snapshot(
            id=require(body, "id", int, vendor=VENDOR),
            name=require(body, "name", str, vendor=VENDOR),
            path=require(body, "path", str, vendor=VENDOR),
            created=created if isinstance(created, str) else None,
        )

    # --- health ----------------------------------------------------------------------------

    async def probe(self) -> None:
        """A cheap authenticated call: the cluster list."""
        path = self.url("clusters")
        body = await self.client.json("GET", path)
        if not isinstance(body, list | dict):
            raise self.client.malformed("GET", path, "not a list of clusters")
