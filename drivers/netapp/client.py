"""The ONTAP REST API as the ``netapp`` backend uses it: HTTP Basic auth over the shared
pooled client (``drivers.rest``), ONTAP's error body, and its asynchronous jobs.

- Auth (``OntapBasicAuth``): the user name and password go on every call (ONTAP keeps no
  session for Basic). A 401 makes it read the password again from where the options said
  (``password_env`` / ``password_file``) and, only when it changed (a rotation), send the
  call once more; a wrong password is not sent in a loop.
- Errors: ONTAP answers ``{"error": {"message", "code", "target"}}`` (codes are strings);
  ``read_ontap_message`` reads that and the flat ``{"message", "code"}`` shape.
- Jobs: POST, PATCH and DELETE on most resources answer 202 with ``{"job": {"uuid"}}``.
  ``OntapApi.run`` asks ONTAP to wait ``return_timeout`` seconds first (a quick change then
  answers 200/201 and needs no polling), and otherwise polls ``/api/cluster/jobs/{uuid}``
  to a terminal state: ``queued``, ``running`` and ``paused`` are not done; ``failure``
  carries the error nested (``error.message``/``error.code``) or, on older releases, at the
  top level (``message``/``code``); a job that answers 404 was purged (ONTAP forgets jobs
  some minutes after they end), so its outcome is confirmed by looking at its effect, or
  said to be unknown; a job still pending at the deadline is ``BackendUnavailable``."""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from typing import Any

import anyio
import httpx
from pydantic import SecretStr

from drivers.errors import BackendApiError, BackendObjectNotFound, BackendUnavailable
from drivers.rest.client import VendorClient, require
from drivers.rest.jobs import JobState, wait_for_job

VENDOR = "ONTAP"
JOB_STATES = {
    "queued": JobState.PENDING,
    "running": JobState.PENDING,
    "paused": JobState.PENDING,
    "success": JobState.SUCCEEDED,
    "failure": JobState.FAILED,
}


def read_ontap_message(body: Any) -> tuple[str | None, str | None]:
    """(message, code) of an ONTAP error body: nested under ``error`` or flat."""
    if not isinstance(body, dict):
        return None, None
    for holder in (body.get("error"), body):
        if isinstance(holder, dict):
            message = holder.get("message")
            if isinstance(message, str) and message:
                code = holder.get("code")
                return message, None if code is None else str(code)
    return None, None


class OntapBasicAuth(httpx.Auth):
    """HTTP Basic on every call; on a 401, the password read again and the call sent once
    more, only if the password changed (see the module docstring)."""

    def __init__(self, username: str, password: SecretStr, reread: Callable[[], SecretStr]):
        self._username = username
        self._password = password
        self._reread = reread
        self.rereads = 0

    def __repr__(self) -> str:
        return f"OntapBasicAuth(username={self._username!r}, password=**********)"

    def _header(self) -> str:
        pair = f"{self._username}:{self._password.get_secret_value()}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("vendor clients are async")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        used = self._password
        request.headers["Authorization"] = self._header()
        response = yield request
        if response.status_code != 401:
            return
        try:
            # A file read (or the environment): off the event loop.
            fresh = await anyio.to_thread.run_sync(self._reread)
        except ValueError:
            return  # the secret is gone: the 401 stands
        self.rereads += 1
        if fresh.get_secret_value() == used.get_secret_value():
            return  # the same password again would get the same answer
        self._password = fresh
        request.headers["Authorization"] = self._header()
        yield request


def dig(value: Any, *keys: str) -> Any:
    """``value[k1][k2]…``, or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def job_state(job: Any) -> tuple[JobState, str | None]:
    """The state of a ``/api/cluster/jobs/{uuid}`` record, with the failure's message."""
    raw = require(job, "state", str, vendor=VENDOR)
    state = JOB_STATES.get(raw)
    if state is None:
        raise BackendApiError(f"{VENDOR} API: malformed answer: unknown job state {raw!r}")
    if state is not JobState.FAILED:
        return state, None
    message, code = read_ontap_message(job)
    text = message or "no reason given"
    return state, f"{text} (code {code})" if code is not None else text


def failure_code(job: Any) -> str | None:
    _, code = read_ontap_message(job)
    return code


class JobFailed(BackendApiError):
    """An ONTAP job ended in ``failure``; ``vendor_code`` is its error code."""


class OntapApi:
    """The calls the driver makes, over one pooled ``VendorClient``."""

    def __init__(
        self,
        client: VendorClient,
        *,
        job_timeout_seconds: float,
        return_timeout_seconds: int,
        poll_interval_seconds: float = 0.5,
    ) -> None:
        self.client = client
        self.job_timeout_seconds = job_timeout_seconds
        self.return_timeout_seconds = return_timeout_seconds
        self.poll_interval_seconds = poll_interval_seconds

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        body = await self.client.json("GET", path, params=params)
        if not isinstance(body, dict):
            raise self.client.malformed("GET", path, "not a JSON object")
        return body

    async def records(self, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every record of a collection, following ``_links.next`` pages."""
        found: list[dict[str, Any]] = []
        next_path: str | None = path
        next_params: Mapping[str, Any] | None = params
        while next_path is not None:
            body = await self.get(next_path, next_params)
            records = require(body, "records", list, vendor=VENDOR)
            for record in records:
                if not isinstance(record, dict):
                    raise self.client.malformed("GET", path, "a record is not an object")
                found.append(record)
            link = dig(body, "_links", "next", "href")
            if isinstance(link, str) and link.startswith("/api/"):
                next_path, next_params = link, None  # the link carries the query
            else:
                next_path = None
        return found

    async def run(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        what: str,
        idempotent: bool | None = None,
        confirm: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """A change, waited for to its end (see the module docstring). ``confirm`` tells,
        should the job be purged before it was seen to end, whether the change is there."""
        params = {"return_timeout": self.return_timeout_seconds}
        response = await self.client.send(
            method, path, params=params, json=json, idempotent=idempotent
        )
        if response.status_code != 202:
            return  # done within return_timeout
        try:
            body = response.json()
        except ValueError:
            raise self.client.malformed(method, path, "the answer is not JSON") from None
        job_uuid = require(body, "job.uuid", str, vendor=VENDOR)
        await self.wait(job_uuid, what=what, confirm=confirm)

    async def wait(
        self,
        job_uuid: str,
        *,
        what: str,
        confirm: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        job_path = f"/api/cluster/jobs/{job_uuid}"

        async def fetch() -> Any:
            return await self.get(job_path, {"fields": "uuid,state,message,code,error"})

        try:
            job = await wait_for_job(
                fetch,
                _checked_state,
                what=what,
                timeout_seconds=self.job_timeout_seconds,
                interval_seconds=self.poll_interval_seconds,
            )
        except BackendObjectNotFound:
            if confirm is not None and await confirm():
                return
            raise BackendUnavailable(
                f"{what}: job {job_uuid} is no longer known to ONTAP (purged after it "
                "ended); its outcome is unknown"
            ) from None
        except _FailedJob as failed:
            raise JobFailed(f"{what} failed: {failed.message}", vendor_code=failed.code) from None
        del job


class _FailedJob(Exception):
    def __init__(self, message: str, code: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _checked_state(job: Any) -> tuple[JobState, str | None]:
    """``job_state``, a failure raised with its code kept (``wait_for_job`` keeps only the
    message)."""
    state, message = job_state(job)
    if state is JobState.FAILED:
        raise _FailedJob(message or "no reason given", failure_code(job))
    return state, message
