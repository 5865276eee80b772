"""The FlashBlade REST 2.x management API, over the shared vendor client (drivers/rest).

- Log-in (``PureLogin``): ``POST /api/login`` with the header ``api-token: <API token>``
  answers with the session in the response header ``x-auth-token``, which every later call
  carries. It is done once and again only when a call answers 401 (never a log-in per call,
  never a lock around the calls themselves: concurrent calls share the session).
- Errors: FlashBlade answers ``{"errors": [{"context": "<object>", "message": "…"}]}``
  (``read_message`` keeps both).
- Lists are paged: ``continuation_token`` at the top of a list answer names the next page,
  until it is absent or null. ``total`` (an aggregate over the items) may be absent or null
  and is never read.

Shapes: py-pure-client ``FB_2_12`` (``FileSystem``, ``FileSystemSnapshot``, ``*GetResponse``)
and the FlashBlade REST 2.x reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from drivers.errors import BackendApiError
from drivers.rest.client import LoginAuth, VendorClient, require

VENDOR = "FlashBlade"
SESSION_HEADER = "x-auth-token"
TOKEN_HEADER = "api-token"  # noqa: S105 (the header's name, not a secret)
# A list longer than this many pages is taken as an array that keeps handing out tokens.
MAX_PAGES = 10_000


class PureLogin(LoginAuth):
    """The API token exchanged for a session token, kept for every call and renewed on 401.
    The API token is a ``SecretStr``: it never shows in a repr, a log or an error."""

    def __init__(self, endpoint: str, api_token: SecretStr) -> None:
        super().__init__(VENDOR)
        self._login_url = endpoint.rstrip("/") + "/api/login"
        self._api_token = api_token

    def __repr__(self) -> str:
        return f"PureLogin({self._login_url!r})"

    def login_request(self) -> httpx.Request:
        return httpx.Request(
            "POST", self._login_url, headers={TOKEN_HEADER: self._api_token.get_secret_value()}
        )

    def session_from(self, response: httpx.Response) -> str:
        session = response.headers.get(SESSION_HEADER)
        if not session:
            raise BackendApiError(
                f"{VENDOR}: the log-in answer has no {SESSION_HEADER} header",
                status=response.status_code,
            )
        return str(session)

    def apply(self, request: httpx.Request, session: str) -> None:
        request.headers[SESSION_HEADER] = session


def read_message(body: Any) -> tuple[str | None, str | None]:
    """(message, code) of a FlashBlade error: its first error's context and message."""
    if not isinstance(body, dict):
        return None, None
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        message = first.get("message")
        context = first.get("context")
        if isinstance(message, str):
            return (f"{context}: {message}" if isinstance(context, str) else message), None
    message = body.get("message")
    return (message if isinstance(message, str) else None), None


@dataclass(frozen=True, slots=True)
class FileSystemSpace:
    """A file system's size and space, from ``GET file-systems?names=<fs>``: the whole file
    system's, never a directory's (FlashBlade has no per-directory accounting over REST)."""

    name: str
    provisioned: int | None  # the file system's size; None when unlimited
    virtual: int  # logical bytes written (before data reduction)
    total_physical: int  # physical bytes used, snapshots included


@dataclass(frozen=True, slots=True)
class FileSystemSnapshot:
    name: str  # <file system>.<suffix>
    suffix: str
    created_ms: int


class FlashBladeApi:
    """The calls the driver makes, under ``/api/<api_version>/``."""

    def __init__(self, client: VendorClient, *, api_version: str, file_system: str) -> None:
        self.client = client
        self.api_version = api_version
        self.file_system = file_system

    def path(self, resource: str) -> str:
        return f"/api/{self.api_version}/{resource}"

    async def items(self, resource: str, params: dict[str, Any]) -> list[Any]:
        """Every item of a (paged) list: pages are followed by ``continuation_token``."""
        path = self.path(resource)
        found: list[Any] = []
        token: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page_params = dict(params)
            if token is not None:
                page_params["continuation_token"] = token
            body = await self.client.json("GET", path, params=page_params)
            if not isinstance(body, dict):
                raise self.client.malformed("GET", path, "the answer is not an object")
            items = require(body, "items", list, vendor=VENDOR)
            found.extend(items)
            next_token = body.get("continuation_token")
            if next_token is None or next_token == "":
                return found
            if not isinstance(next_token, str):
                raise self.client.malformed("GET", path, "continuation_token is not a string")
            if next_token in seen:
                raise self.client.malformed("GET", path, "continuation_token repeats")
            seen.add(next_token)
            token = next_token
        raise self.client.malformed("GET", path, f"more than {MAX_PAGES} pages")

    async def file_system_space(self) -> FileSystemSpace:
        """The configured file system's size and space (also the health probe: an
        authenticated call that proves the file system exists)."""
        items = await self.items("file-systems", {"names": self.file_system})
        if not items:
            raise BackendApiError(f"{VENDOR}: no file system named {self.file_system!r}")
        item = items[0]
        name = require(item, "name", str, vendor=VENDOR)
        provisioned = item.get("provisioned") if isinstance(item, dict) else None
        if provisioned is not None and (
            not isinstance(provisioned, int) or isinstance(provisioned, bool)
        ):
            raise BackendApiError(f"{VENDOR} API: malformed answer: provisioned is not a number")
        return FileSystemSpace(
            name=name,
            provisioned=provisioned,
            virtual=require(item, "space.virtual", int, vendor=VENDOR),
            total_physical=require(item, "space.total_physical", int, vendor=VENDOR),
        )

    async def snapshots(self, suffix_prefix: str) -> list[FileSystemSnapshot]:
        """The file system's live (not destroyed) snapshots whose suffix starts with
        ``suffix_prefix``. The array filters; the prefix is checked here again, so an
        array that ignored the filter cannot hand another vfolder's snapshots over."""
        items = await self.items(
            "file-system-snapshots",
            {
                "names_or_owner_names": self.file_system,
                "destroyed": False,
                "filter": f"suffix='{suffix_prefix}*'",
            },
        )
        found = []
        for item in items:
            snapshot = _snapshot(item)
            if (
                snapshot.suffix.startswith(suffix_prefix)
                and snapshot.name == f"{self.file_system}.{snapshot.suffix}"
                and not (isinstance(item, dict) and item.get("destroyed") is True)
            ):
                found.append(snapshot)
        return found

    async def create_snapshot(self, suffix: str) -> FileSystemSnapshot:
        # A POST: never sent twice when its outcome is unknown (VendorClient).
        path = self.path("file-system-snapshots")
        body = await self.client.json(
            "POST", path, params={"source_names": self.file_system}, json={"suffix": suffix}
        )
        return _snapshot(require(body, "items.0", dict, vendor=VENDOR))

    async def destroy_snapshot(self, name: str) -> None:
        """Destroyed: out of sight, eradicated by the array after its eradication delay."""
        await self.client.send(
            "PATCH",
            self.path("file-system-snapshots"),
            params={"names": name},
            json={"destroyed": True},
            idempotent=True,  # setting the same flag twice does the same
        )

    async def eradicate_snapshot(self, name: str) -> None:
        """Gone for good (only a destroyed snapshot can be eradicated)."""
        await self.client.send("DELETE", self.path("file-system-snapshots"), params={"names": name})


def _snapshot(item: Any) -> FileSystemSnapshot:
    return FileSystemSnapshot(
        name=require(item, "name", str, vendor=VENDOR),
        suffix=require(item, "suffix", str, vendor=VENDOR),
        created_ms=require(item, "created", int, vendor=VENDOR),
    )
