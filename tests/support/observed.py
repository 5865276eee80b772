"""What the hostile tests see, held against what ``openapi/openapi.yaml`` promises: every
(operation, status) pair an in-process client observes must be documented for that
operation, and every error must be ``application/problem+json``."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache

import httpx

from tests.support.spec import committed_spec


@dataclass
class Observations:
    # (operationId, status) → one request that produced it, to quote in a failure.
    statuses: dict[tuple[str, int], str] = field(default_factory=dict)
    not_problem_json: list[str] = field(default_factory=list)

    def add(self, method: str, target: str, status: int) -> None:
        """An answer seen outside an in-process client (a raw socket to a real server)."""
        operation = operation_of(method, urllib.parse.unquote(target.split("?", 1)[0]))
        if operation is not None:
            self.statuses.setdefault((operation, status), f"{method} {target[:120]}")

    def undocumented(self) -> list[str]:
        documented = documented_statuses()
        return sorted(
            f"{operation} {status} (e.g. {example})"
            for (operation, status), example in self.statuses.items()
            if str(status) not in documented.get(operation, set())
        )


_active: list[Observations] = []


@cache
def documented_statuses() -> dict[str, set[str]]:
    spec = committed_spec()
    found: dict[str, set[str]] = {}
    for path_item in spec["paths"].values():
        for operation in path_item.values():
            found[operation["operationId"]] = set(operation.get("responses", {}))
    return found


@contextmanager
def observing() -> Iterator[Observations]:
    seen = Observations()
    _active.append(seen)
    try:
        yield seen
    finally:
        _active.remove(seen)


@cache
def _operations() -> list[tuple[re.Pattern[str], str, str]]:
    """(path pattern, method, operationId) of every documented operation. A ``{path}``
    parameter spans slashes, as the files routes declare it."""
    spec = committed_spec()
    found = []
    for template, path_item in spec["paths"].items():
        pattern = re.sub(
            r"\\{(\w+)\\}",
            lambda m: "(.+)" if m.group(1) == "path" else "([^/]+)",
            re.escape(template),
        )
        for method, operation in path_item.items():
            found.append((re.compile(pattern + "$"), method.upper(), operation["operationId"]))
    # The most literal template first: ``/snapshots/{name}/list`` before ``/files/{path}``.
    return sorted(found, key=lambda entry: entry[0].pattern.count("("))


def _operation(request: httpx.Request) -> str | None:
    raw_path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
    path = urllib.parse.unquote(raw_path)
    return operation_of(request.method, path)


def operation_of(method: str, path: str) -> str | None:
    """The documented operation answering ``method`` on ``path`` (HEAD falls back to GET)."""
    for wanted in (method, "GET") if method == "HEAD" else (method,):
        for pattern, documented_method, operation in _operations():
            if documented_method == wanted and pattern.match(path):
                return operation
    return None


def recorder() -> Callable[[httpx.Response], Awaitable[None]]:
    """An httpx response hook for an in-process client; records only inside ``observing``."""

    async def record(response: httpx.Response) -> None:
        if not _active:
            return
        request = response.request
        example = f"{request.method} {request.url.raw_path.decode('ascii')[:120]}"
        if response.status_code >= 400 and request.method != "HEAD":
            content_type = response.headers.get("content-type", "")
            if content_type != "application/problem+json":
                for seen in _active:
                    seen.not_problem_json.append(f"{example}: {response.status_code}")
        operation = _operation(request)
        if operation is None:
            return
        for seen in _active:
            seen.statuses.setdefault((operation, response.status_code), example)

    return record


def assert_documented(seen: Observations) -> None:
    undocumented = seen.undocumented()
    assert undocumented == [], "statuses observed but not in openapi/openapi.yaml:\n" + "\n".join(
        undocumented
    )
    assert seen.not_problem_json == [], "errors that are not problem+json:\n" + "\n".join(
        seen.not_problem_json
    )
