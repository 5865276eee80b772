"""The OneFS Platform API (PAPI) as this backend uses it: a thin layer over the shared
``VendorClient`` (pooling, TLS, timeouts, retries, error mapping) that knows OneFS's paths,
its error body (``{"errors": [{"code", "message"}]}``), its numbers that are sometimes
strings, and its session log-in (``POST /session/1/session`` → ``isisessid`` cookie and
``X-CSRF-Token`` header), besides plain HTTP Basic on every call.

Paths: quotas are under ``/platform/<api_version>/quota/quotas`` (12 by default, as in
Backend.AI), snapshots under ``/platform/1/snapshot/snapshots``. Ids are quoted into URLs: a
quota id is an opaque base64-looking string."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from drivers.errors import BackendApiError
from drivers.rest.client import LoginAuth, VendorClient

VENDOR = "OneFS"
SESSION_COOKIE = "isisessid"
CSRF_COOKIE = "isicsrf"
# The session value ``LoginAuth`` keeps: the session id, and the CSRF token when the cluster
# sent one (OneFS before 8.2 did not), joined by a character neither may contain.
_SEPARATOR = "\n"
# How many objects a list call asks for at once (PAPI pages with a ``resume`` token).
PAGE_LIMIT = 1000


def onefs_message(body: Any) -> tuple[str | None, str | None]:
    """(message, code) of a PAPI error body ``{"errors": [{"code": "AEC_…", "message": …}]}``:
    every message kept, joined, with the first code; the generic shapes otherwise."""
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        errors = [e for e in body["errors"] if isinstance(e, dict)]
        messages = [e["message"] for e in errors if isinstance(e.get("message"), str)]
        codes = [str(e["code"]) for e in errors if e.get("code") is not None]
        if messages or codes:
            return ("; ".join(messages) or None), (codes[0] if codes else None)
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str):
            code = body.get("code")
            return message, None if code is None else str(code)
    return None, None


def as_int(value: Any, what: str) -> int:
    """A PAPI number, which some versions send as a string (``"10737418240"``)."""
    if isinstance(value, bool):
        raise BackendApiError(f"{VENDOR} API: malformed answer: {what} is a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise BackendApiError(
        f"{VENDOR} API: malformed answer: {what} is {type(value).__name__} {str(value)[:40]!r}, "
        "not a number"
    )


def as_optional_int(value: Any, what: str) -> int | None:
    return None if value is None else as_int(value, what)


def objects(body: Any, key: str, *, method: str, path: str) -> list[dict[str, Any]]:
    """``body[key]``, a list of JSON objects, or a ``BackendApiError`` saying what is wrong."""
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise BackendApiError(f"{VENDOR} API {method} {path}: malformed answer: no {key} list")
    items: list[dict[str, Any]] = body[key]
    if not all(isinstance(item, dict) for item in items):
        raise BackendApiError(
            f"{VENDOR} API {method} {path}: malformed answer: {key} holds a non-object"
        )
    return items


class OneFsSessionAuth(LoginAuth):
    """OneFS session authentication: one ``POST /session/1/session`` for the client, its
    ``isisessid`` cookie and ``X-CSRF-Token`` (the ``isicsrf`` cookie) on every call, and one
    log-in again when a call answers 401 (the session timed out)."""

    def __init__(self, *, endpoint: str, username: str, password: SecretStr) -> None:
        super().__init__(VENDOR)
        self._endpoint = endpoint.rstrip("/")
        self._username = username
        self._password = password

    def __repr__(self) -> str:
        return f"OneFsSessionAuth(endpoint={self._endpoint!r}, username={self._username!r})"

    def login_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            f"{self._endpoint}/session/1/session",
            json={
                "username": self._username,
                "password": self._password.get_secret_value(),
                "services": ["platform", "namespace"],
            },
            headers={"Accept": "application/json"},
        )

    def session_from(self, response: httpx.Response) -> str:
        session = response.cookies.get(SESSION_COOKIE)
        if not session:
            raise BackendApiError(
                f"{VENDOR}: log-in answered {response.status_code} without an "
                f"{SESSION_COOKIE} cookie"
            )
        csrf = response.cookies.get(CSRF_COOKIE) or ""
        return f"{session}{_SEPARATOR}{csrf}"

    def apply(self, request: httpx.Request, session: str) -> None:
        session_id, _, csrf = session.partition(_SEPARATOR)
        # Set explicitly: the client's cookie jar may still hold an expired session.
        request.headers["Cookie"] = f"{SESSION_COOKIE}={session_id}"
        if csrf:
            request.headers["X-CSRF-Token"] = csrf
            request.headers["Referer"] = self._endpoint


class OneFsApi:
    """The PAPI calls of this backend. Every answer is checked for the shape read from it:
    a malformed one is a ``BackendApiError`` naming what is missing."""

    def __init__(self, client: VendorClient, *, api_version: int) -> None:
        self.client = client
        self._quotas = f"/platform/{api_version}/quota/quotas"
        self._snapshots = "/platform/1/snapshot/snapshots"

    # -- health --------------------------------------------------------------------------

    async def identity(self) -> dict[str, Any]:
        path = "/platform/1/cluster/identity"
        body = await self.client.json("GET", path)
        if not isinstance(body, dict):
            raise self.client.malformed("GET", path, "not a JSON object")
        return body

    # -- quotas --------------------------------------------------------------------------

    async def find_directory_quota(self, ifs_path: str) -> dict[str, Any] | None:
        """The directory quota whose path is exactly ``ifs_path`` and that does not count
        snapshots (the one this backend manages), or None."""
        params = {"path": ifs_path, "type": "directory"}
        async for quota in self._pages(self._quotas, "quotas", params):
            if (
                quota.get("path") == ifs_path
                and quota.get("type") == "directory"
                and not quota.get("include_snapshots")
            ):
                return quota
        return None

    async def create_directory_quota(self, ifs_path: str, *, hard: int | None) -> str:
        """A new directory quota on ``ifs_path``: enforced with a hard threshold, or an
        accounting quota (usage only) for ``hard=None``. Its id."""
        body: dict[str, Any] = {
            "path": ifs_path,
            "type": "directory",
            "include_snapshots": False,
            "thresholds_on": "fslogicalsize",
            "enforced": hard is not None,
            "thresholds": {} if hard is None else {"hard": hard},
        }
        answer = await self.client.json("POST", self._quotas, json=body)
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
            raise self.client.malformed("POST", self._quotas, "no quota id")
        return str(answer["id"])

    async def update_hard_threshold(self, quota_id: str, *, hard: int | None) -> None:
        """``hard=None`` clears the hard threshold and leaves an accounting quota."""
        await self.client.json(
            "PUT",
            f"{self._quotas}/{quote(quota_id, safe='')}",
            json={"thresholds": {"hard": hard}, "enforced": hard is not None},
        )

    async def delete_quota(self, quota_id: str) -> None:
        await self.client.send("DELETE", f"{self._quotas}/{quote(quota_id, safe='')}")

    # -- snapshots -----------------------------------------------------------------------

    async def create_snapshot(self, name: str, ifs_path: str) -> dict[str, Any]:
        answer = await self.client.json(
            "POST", self._snapshots, json={"name": name, "path": ifs_path}
        )
        if not isinstance(answer, dict):
            raise self.client.malformed("POST", self._snapshots, "not a JSON object")
        return answer

    async def get_snapshot(self, name: str) -> dict[str, Any]:
        """The snapshot named ``name`` (``BackendObjectNotFound`` when there is none)."""
        path = f"{self._snapshots}/{quote(name, safe='')}"
        found = objects(await self.client.json("GET", path), "snapshots", method="GET", path=path)
        if not found:
            raise self.client.malformed("GET", path, "an empty snapshots list")
        return found[0]

    def snapshots(self) -> AsyncIterator[dict[str, Any]]:
        """Every snapshot of the cluster, page by page (PAPI has no name filter)."""
        return self._pages(self._snapshots, "snapshots", {})

    async def delete_snapshot(self, snapshot_id: int | str) -> None:
        await self.client.send("DELETE", f"{self._snapshots}/{quote(str(snapshot_id), safe='')}")

    # -- paging --------------------------------------------------------------------------

    async def _pages(
        self, path: str, key: str, params: Mapping[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        # A ``resume`` token stands for the whole query: it is sent alone (PAPI refuses it
        # with other options).
        query: dict[str, Any] = {**params, "limit": PAGE_LIMIT}
        seen: set[str] = set()
        while True:
            body = await self.client.json("GET", path, params=query)
            for item in objects(body, key, method="GET", path=path):
                yield item
            resume = body.get("resume") if isinstance(body, dict) else None
            if not resume:
                return
            if not isinstance(resume, str) or resume in seen:
                raise self.client.malformed("GET", path, "a resume token that does not advance")
            seen.add(resume)
            query = {"resume": resume}
