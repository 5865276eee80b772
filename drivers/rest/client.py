"""One async httpx client per vendor API, shared by every request of a volume.

- TLS is verified unless the operator turns it off; a CA bundle may be given.
- Every call has a timeout. Safe calls (GET, HEAD, PUT, DELETE, and those the caller marks
  idempotent) are retried with exponential backoff on connection errors, timeouts, 429 and
  5xx. Any other call is retried only when it provably never reached the server (the
  connection could not be opened): a POST whose outcome is unknown is never sent twice.
- Authentication is an ``httpx.Auth``: ``LoginAuth`` logs in once, reuses the session, and
  logs in again (once) when a call answers 401.
- A vendor error becomes a ``BackendApiError`` carrying the vendor's message and code; a
  missing object ``BackendObjectNotFound``; a body that is not the JSON expected a
  ``BackendApiError`` too, never an exception of ours."""

from __future__ import annotations

import abc
import random
import ssl
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any

import anyio
import httpx

from drivers.errors import BackendApiError, BackendObjectNotFound, BackendUnavailable
from drivers.rest.options import RestApiOptions

SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_SECONDS = 5.0

# Reads the vendor's error message (and code) out of an error response's JSON body.
MessageReader = Callable[[Any], tuple[str | None, str | None]]


def generic_message(body: Any) -> tuple[str | None, str | None]:
    """(message, code) from the common shapes: ``{"error": {"message", "code"}}``,
    ``{"message", "code"}``, ``{"errors": [{"message", "code"}]}``, ``{"detail"}``."""
    if not isinstance(body, dict):
        return None, None
    for holder in (body.get("error"), body, *(body.get("errors") or [])[:1]):
        if isinstance(holder, dict):
            message = holder.get("message") or holder.get("detail")
            if isinstance(message, str):
                code = holder.get("code")
                return message, None if code is None else str(code)
    return None, None


class LoginAuth(httpx.Auth, abc.ABC):
    """A session obtained by logging in, reused by every call and renewed on 401.

    A subclass says how to log in (``login_request``), what to keep from a log-in or refresh
    answer (``session_from``, raising ``BackendApiError`` on a malformed one) and how a call
    carries it (``apply``). Where the vendor has refresh tokens, ``refresh_request`` renews
    the session without the password (a refused refresh falls back to a log-in), and where
    sessions carry a lifetime, ``expired`` renews it before a call fails.

    Concurrent calls that find no session wait for one log-in, not one each; a call answered
    401 renews the session once, unless another call already did, and is sent again once: a
    second 401 is the answer, never a loop."""

    requires_response_body = True

    def __init__(self, vendor: str, *, read_message: MessageReader = generic_message) -> None:
        self.vendor = vendor
        self._read_message = read_message
        self._session: str | None = None
        self._lock = anyio.Lock()
        self.logins = 0
        self.refreshes = 0

    @abc.abstractmethod
    def login_request(self) -> httpx.Request: ...

    @abc.abstractmethod
    def session_from(self, response: httpx.Response) -> str: ...

    @abc.abstractmethod
    def apply(self, request: httpx.Request, session: str) -> None: ...

    def refresh_request(self) -> httpx.Request | None:
        """A renewal without the password, or None (log in again)."""
        return None

    def expired(self) -> bool:
        """Whether the session is known to be (about to be) out of date."""
        return False

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("vendor clients are async")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        used = self._session
        renew = used is None or self.expired()
        for answered_401 in (False, True):
            if renew:
                async with self._lock:
                    # Another call may have renewed it while this one waited.
                    if self._session is None or (
                        self._session == used and (answered_401 or self.expired())
                    ):
                        refresh = self.refresh_request() if self._session is not None else None
                        renewed = False
                        if refresh is not None:
                            renewed = self._take_refreshed((yield refresh))
                        if not renewed:
                            self._accept((yield self.login_request()))
                used = self._session
            assert used is not None
            self.apply(request, used)
            response = yield request
            if response.status_code != 401 or answered_401:
                return
            renew = True

    def _take_refreshed(self, response: httpx.Response) -> bool:
        if not response.is_success:
            return False
        try:
            self._session = self.session_from(response)
        except BackendApiError:
            return False
        self.refreshes += 1
        return True

    def _accept(self, response: httpx.Response) -> None:
        if not response.is_success:
            self._session = None
            message, code = self._read_message(_json_or_none(response))
            raise BackendApiError(
                f"{self.vendor}: log-in refused ({response.status_code})"
                + (f": {message}" if message else ""),
                status=response.status_code,
                vendor_code=code,
            )
        self._session = self.session_from(response)
        self.logins += 1


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def tls_verification(options: RestApiOptions) -> ssl.SSLContext | bool:
    if not options.verify_tls:
        return False
    if options.ca_bundle is not None:
        try:
            return ssl.create_default_context(cafile=str(options.ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"ca_bundle {options.ca_bundle}: {exc}") from None
    return True


class VendorClient:
    """A vendor's management API, for one volume; see the module docstring."""

    def __init__(
        self,
        *,
        vendor: str,
        options: RestApiOptions,
        auth: httpx.Auth | None = None,
        read_message: MessageReader = generic_message,
        headers: Mapping[str, str] | None = None,
        backoff_seconds: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.vendor = vendor
        self._retries = options.retries
        self._backoff = backoff_seconds
        self._read_message = read_message
        self._settings: dict[str, Any] = {
            "base_url": str(options.endpoint),
            "auth": auth,
            "verify": tls_verification(options),
            "timeout": httpx.Timeout(options.timeout_seconds),
            "limits": httpx.Limits(max_connections=16, max_keepalive_connections=8),
            "headers": {"Accept": "application/json", **(headers or {})},
            "transport": transport,
        }
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """The pooled client, opened on first use (again after ``aclose``: an app's
        lifespan may run more than once)."""
        if self._http is None:
            self._http = httpx.AsyncClient(**self._settings)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> Any:
        """The JSON body of a successful call (``None`` for an empty one)."""
        response = await self.send(method, path, params=params, json=json, idempotent=idempotent)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise self.malformed(method, path, "the answer is not JSON") from None

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """A successful response; else ``BackendObjectNotFound`` (404), ``BackendApiError``
        (another error answer) or ``BackendUnavailable`` (no answer)."""
        safe = method in SAFE_METHODS if idempotent is None else idempotent
        attempt = 0
        while True:
            try:
                response = await self.http.request(method, path, params=params, json=json)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # The request never left: sending it again cannot do anything twice.
                failure, retryable = f"cannot connect: {exc or type(exc).__name__}", True
            except httpx.TimeoutException:
                failure, retryable = "timed out", safe
            except httpx.TransportError as exc:
                failure, retryable = f"connection failed: {exc or type(exc).__name__}", safe
            else:
                # 429 says the call was not processed: any call may be sent again.
                retryable = response.status_code == 429 or (
                    safe and response.status_code in RETRIED_STATUSES
                )
                if response.is_success or not retryable or attempt >= self._retries:
                    if response.is_success:
                        return response
                    raise self._error(method, path, response)
                await anyio.sleep(self._delay(attempt, response))
                attempt += 1
                continue
            if not retryable or attempt >= self._retries:
                raise BackendUnavailable(f"{self.vendor} API {method} {path}: {failure}")
            await anyio.sleep(self._delay(attempt, None))
            attempt += 1

    def malformed(self, method: str, path: str, what: str) -> BackendApiError:
        return BackendApiError(f"{self.vendor} API {method} {path}: malformed answer: {what}")

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        asked = response.headers.get("Retry-After") if response is not None else None
        if asked is not None and asked.isdigit():
            return min(float(asked), MAX_BACKOFF_SECONDS)
        backoff = self._backoff * 2.0**attempt
        jitter: float = random.uniform(0, backoff / 2)  # noqa: S311 (spreads retries, no secret)
        return min(backoff + jitter, MAX_BACKOFF_SECONDS)

    def _error(self, method: str, path: str, response: httpx.Response) -> BackendApiError:
        message, code = self._read_message(_json_or_none(response))
        if message is None:
            message = response.text[:200].strip() or response.reason_phrase
        kind = BackendObjectNotFound if response.status_code == 404 else BackendApiError
        return kind(
            f"{self.vendor} API {method} {path} answered {response.status_code}: {message}",
            status=response.status_code,
            vendor_code=code,
        )


def require(body: Any, path: str, kind: type[Any], *, vendor: str) -> Any:
    """``body[a][b]…`` for ``path`` = ``"a.b…"`` (a digit indexes a list), of type ``kind``;
    a ``BackendApiError`` naming what is missing or of the wrong type otherwise."""
    value = body
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise BackendApiError(f"{vendor} API: malformed answer: no {path}")
    # bool is an int in Python, never what a vendor's number means.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BackendApiError(
            f"{vendor} API: malformed answer: {path} is {type(value).__name__}, not {kind.__name__}"
        )
    return value
