"""WekaFS REST API v2 (``https://<host>:14000/api/v2/…``): the log-in flow, the error body
shape, and the few calls the driver makes.

- Log-in: ``POST /api/v2/login {"username", "password", "org"}`` answers
  ``{"data": {"access_token", "refresh_token", "expires_in", "token_type": "Bearer"}}``;
  every call then carries ``Authorization: Bearer <access_token>``. ``WekaAuth`` logs in
  once, renews the token a little before ``expires_in`` runs out and whenever a call answers
  401, with ``POST /api/v2/login/refresh {"refresh_token"}`` first and a fresh log-in when
  the refresh is refused. Concurrent calls share one renewal.
- Every answer is an envelope ``{"data": …}``; an error one says what went wrong in
  ``message`` (``{"message": "Directory has no quota", "data": {}}``).
- Nothing here sends a timestamp, so nothing can send the malformed ``…+00:00Z`` of
  Backend.AI's Weka client; timestamps read (snapshot creation times) are parsed as ISO 8601.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio
import httpx
from pydantic import SecretStr

from drivers.errors import BackendApiError, BackendObjectNotFound
from drivers.rest.client import LoginAuth, VendorClient, generic_message, require

VENDOR = "weka"
API = "/api/v2"
NO_QUOTA = "directory has no quota"
# Renew this long before the token runs out (capped at a fifth of its lifetime).
RENEW_AHEAD_SECONDS = 30.0


def weka_message(body: Any) -> tuple[str | None, str | None]:
    """(message, code) of a Weka error body: ``{"message": …}``, ``{"data": {"message"|
    "error": …}}``, ``{"error": "…"}``, or one of the common shapes."""
    if isinstance(body, dict):
        code = body.get("code")
        code_text = None if code is None else str(code)
        for holder in (body, body.get("data")):
            if isinstance(holder, dict):
                for key in ("message", "error", "detail"):
                    value = holder.get(key)
                    if isinstance(value, str) and value:
                        return value, code_text
    return generic_message(body)


class WekaAuth(LoginAuth):
    """The Weka token flow; see the module docstring. ``logins`` counts fresh log-ins,
    ``refreshes`` the tokens renewed with the refresh token."""

    def __init__(
        self,
        *,
        endpoint: str,
        username: str,
        password: SecretStr,
        org: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(VENDOR, read_message=weka_message)
        # The log-in calls leave through the client, but httpx does not join them to its
        # base URL: they carry the whole URL.
        self._base = endpoint.rstrip("/")
        self._username = username
        self._password = password
        self._org = org
        self._clock = clock
        self._refresh_token: str | None = None
        self._renew_at = float("inf")

    def __repr__(self) -> str:
        return f"WekaAuth(username={self._username!r}, org={self._org!r})"

    def login_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            f"{self._base}{API}/login",
            json={
                "username": self._username,
                "password": self._password.get_secret_value(),
                "org": self._org,
            },
        )

    def session_from(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            raise BackendApiError(f"{VENDOR}: log-in answer is not JSON") from None
        token: str = require(body, "data.access_token", str, vendor=VENDOR)
        refresh = body["data"].get("refresh_token")
        self._refresh_token = refresh if isinstance(refresh, str) and refresh else None
        expires_in = body["data"].get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            ahead = min(RENEW_AHEAD_SECONDS, max(float(expires_in), 0.0) / 5)
            self._renew_at = self._clock() + float(expires_in) - ahead
        else:
            self._renew_at = float("inf")  # no lifetime given: renewed on 401 only
        return token

    def apply(self, request: httpx.Request, session: str) -> None:
        request.headers["Authorization"] = f"Bearer {session}"

    def refresh_request(self) -> httpx.Request | None:
        if self._refresh_token is None:
            return None
        return httpx.Request(
            "POST",
            f"{self._base}{API}/login/refresh",
            json={"refresh_token": self._refresh_token},
        )

    def expired(self) -> bool:
        return self._clock() >= self._renew_at


def iso_timestamp(value: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 time (``Z`` or an offset); None otherwise."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # a time without its zone would be a guess
    return parsed.timestamp()


class WekaApi:
    """The calls the driver makes, over one pooled ``VendorClient``."""

    def __init__(self, client: VendorClient) -> None:
        self.client = client
        self._fs_lock = anyio.Lock()

    def malformed(self, method: str, path: str, what: str) -> BackendApiError:
        return self.client.malformed(method, path, what)

    async def data(self, method: str, path: str, *, json: Any = None) -> Any:
        """The ``data`` of the envelope (``None`` for an empty answer)."""
        body = await self.client.json(method, f"{API}{path}", json=json)
        if body is None:
            return None
        if not isinstance(body, dict) or "data" not in body:
            raise self.malformed(method, f"{API}{path}", "no data envelope")
        return body["data"]

    async def cluster(self) -> None:
        """The health probe: a cheap authenticated call."""
        found = await self.data("GET", "/cluster")
        if not isinstance(found, dict):
            raise self.malformed("GET", f"{API}/cluster", "data is not an object")

    async def filesystem_uid(self, name: str) -> str:
        found = await self.data("GET", "/fileSystems")
        if not isinstance(found, list):
            raise self.malformed("GET", f"{API}/fileSystems", "data is not a list")
        names = []
        for item in found:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                names.append(item["name"])
                if item["name"] == name:
                    uid: str = require(item, "uid", str, vendor=VENDOR)
                    return uid
        raise BackendObjectNotFound(
            f"{VENDOR}: no filesystem named {name!r} (there are: {', '.join(names) or 'none'})"
        )

    async def quota(self, fs_uid: str, inode: int) -> dict[str, Any] | None:
        """The directory quota of ``inode`` (``used_bytes``, ``hard_limit_bytes``…), or
        None when the directory has none."""
        path = f"/fileSystems/{fs_uid}/quota/{inode}"
        try:
            body = await self.client.json("GET", f"{API}{path}")
        except BackendApiError as exc:
            if isinstance(exc, BackendObjectNotFound) or NO_QUOTA in str(exc).lower():
                return None
            raise
        if not isinstance(body, dict):
            raise self.malformed("GET", f"{API}{path}", "not an object")
        message = body.get("message")
        if isinstance(message, str) and NO_QUOTA in message.lower():
            return None
        data = body.get("data")
        if not isinstance(data, dict):
            raise self.malformed("GET", f"{API}{path}", "no data object")
        if not data:
            return None
        if "inode_id" in data or "used_bytes" in data:
            return data
        # {"<quota id>": {…}}: the one quota of that directory.
        records = [value for value in data.values() if isinstance(value, dict)]
        if len(records) != 1:
            raise self.malformed("GET", f"{API}{path}", "not one quota record")
        return records[0]

    async def set_quota(self, fs_uid: str, inode: int, limit_bytes: int) -> None:
        await self.data(
            "PUT",
            f"/fileSystems/{fs_uid}/quota/{inode}",
            json={"hard_limit_bytes": limit_bytes},
        )

    async def unset_quota(self, fs_uid: str, inode: int) -> None:
        try:
            await self.client.send("DELETE", f"{API}/fileSystems/{fs_uid}/quota/{inode}")
        except BackendApiError as exc:
            # Unset is idempotent: a directory without a quota is what was asked for.
            if not (isinstance(exc, BackendObjectNotFound) or NO_QUOTA in str(exc).lower()):
                raise

    async def snapshots(self) -> list[dict[str, Any]]:
        found = await self.data("GET", "/snapshots")
        if isinstance(found, dict):  # keyed by id, like other Weka lists
            found = list(found.values())
        if not isinstance(found, list):
            raise self.malformed("GET", f"{API}/snapshots", "data is not a list")
        return [item for item in found if isinstance(item, dict)]

    async def create_snapshot(self, fs_uid: str, *, name: str, access_point: str) -> Any:
        # A POST: never sent twice when its outcome is unknown (VendorClient).
        return await self.data(
            "POST",
            "/snapshots",
            json={
                "fs_uid": fs_uid,
                "name": name,
                "access_point": access_point,
                "is_writable": False,
            },
        )

    async def delete_snapshot(self, uid: str) -> None:
        await self.client.send("DELETE", f"{API}/snapshots/{uid}")
