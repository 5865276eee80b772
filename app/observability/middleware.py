"""The outermost request wrapper: request id, request log line, metrics, last-resort errors.

A pure ASGI middleware (not ``BaseHTTPMiddleware``) so streamed bodies pass through untouched.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db.availability import is_database_outage
from app.observability.context import bind_log_fields, reset_log_fields
from app.observability.logging import get_logger
from app.observability.metrics import Metrics
from app.problems import database_unavailable, handle_domain_error, internal_error_response

REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

log = get_logger("storage_proxy.access")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            # Echo only ids that cannot inject anything into headers or log lines.
            return candidate if _SAFE_REQUEST_ID.match(candidate) else None
    return None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # The two metric children of each label set seen: ``labels()`` takes a lock and
        # builds its key on every call. As bounded as the label sets themselves.
        self._children: dict[tuple[str, ...], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        reset_log_fields()
        bind_log_fields(request_id=request_id)

        status_code = 500
        response_started = False
        started = time.perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception as exc:
            outage = is_database_outage(exc)
            if not outage:
                log.exception("unhandled error")
            state["problem_type"] = "/problems/unavailable" if outage else "/problems/internal"
            if response_started:
                # Headers are gone; the client sees a truncated body. Nothing more to send.
                raise
            # A database lost outside a route's handlers (a dependency's commit) is still a 503.
            response = (
                await handle_domain_error(Request(scope), database_unavailable(exc))
                if outage
                else internal_error_response(request_id)
            )
            await response(scope, receive, send_with_request_id)
        finally:
            self._observe(scope, status_code, time.perf_counter() - started)

    def _observe(self, scope: Scope, status_code: int, elapsed: float) -> None:
        state = scope.get("state", {})
        endpoint, domain, operation = _route_labels(scope)
        key = (
            scope["method"],
            endpoint,
            domain,
            operation,
            state.get("problem_type", ""),
            str(status_code),
        )
        children = self._children.get(key)
        if children is None:
            children = (
                self.metrics.request_count.labels(*key),
                self.metrics.request_duration.labels(*key),
            )
            self._children[key] = children
        count, duration = children
        count.inc()
        duration.observe(elapsed)
        log.info(
            "%s %s %s",
            scope["method"],
            endpoint,
            status_code,
            extra={"status": status_code, "duration_ms": round(elapsed * 1000, 2)},
        )


def _route_labels(scope: Scope) -> tuple[str, str, str]:
    """Route template, tag and operation id — never the raw path, which would explode the
    label cardinality with every vfolder id."""
    route = scope.get("route")
    if route is None:
        # Routing failed (404/405) or never ran: find the template if one matches the path.
        app = scope.get("app")
        for candidate in getattr(getattr(app, "router", None), "routes", ()):
            match, _ = candidate.matches(scope)
            if match is not Match.NONE:
                route = candidate
                break
    if route is None:
        return "<unmatched>", "", ""
    tags = getattr(route, "tags", None) or [""]
    return (
        getattr(route, "path", "<unmatched>"),
        str(tags[0]),
        str(getattr(route, "operation_id", None) or getattr(route, "name", "") or ""),
    )
