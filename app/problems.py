"""Renders every error as RFC 9457 ``application/problem+json`` and installs the handlers.

Handlers are registered per base class; Starlette finds them by walking the exception's class
hierarchy, so a new domain error needs no new handler."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError as SQLAlchemyDBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

from app.db.availability import DatabaseUnreachable, is_database_outage
from app.errors import (
    HTTP_STATUS_PROBLEMS,
    INTERNAL_PROBLEM,
    VALIDATION_PROBLEM,
    DependencyUnavailable,
    DomainError,
    driver_problem,
)
from app.observability.logging import get_logger
from drivers.errors import DriverError
from drivers.paths import display_text

PROBLEM_CONTENT_TYPE = "application/problem+json"

log = get_logger(__name__)


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_CONTENT_TYPE


def problem_response(
    *,
    problem_type: str,
    title: str,
    status: int,
    detail: str,
    request_id: str | None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": problem_type,
        "title": title,
        "status": status,
        # A path in a message may hold bytes that are not UTF-8 (a name made through a mount).
        "detail": display_text(detail),
    }
    if request_id:
        body["request_id"] = request_id
    body.update(extensions)
    return ProblemResponse(jsonable_encoder(body), status_code=status, headers=headers)


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _remember(request: Request, problem_type: str) -> None:
    # The metrics middleware labels the request with it (``error_detail``).
    request.state.problem_type = problem_type


async def handle_domain_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, DomainError)
    _remember(request, exc.problem_type)
    denial = exc.denial or (("authenticate", "unauthenticated") if exc.status == 401 else None)
    runtime = getattr(request.app.state, "runtime", None)
    if denial is not None and runtime is not None:
        operation, reason = denial
        runtime.metrics.access_denied.labels(operation=operation, reason=reason).inc()
    if exc.status >= 500:
        log.error("request failed: %s", exc.detail, extra={"problem": exc.problem_type})
    elif exc.status == 401:
        log.warning("authentication refused: %s", exc.detail, extra={"audit": True})
    headers = {"WWW-Authenticate": 'Bearer realm="storage-proxy"'} if exc.status == 401 else {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return problem_response(
        problem_type=exc.problem_type,
        title=exc.title,
        status=exc.status,
        detail=exc.detail,
        request_id=_request_id(request),
        headers=headers or None,
        **exc.extensions,
    )


async def handle_driver_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, DriverError)
    problem_type, title, status = driver_problem(exc)
    _remember(request, problem_type)
    if status >= 500:
        log.error("storage failure: %s", exc, extra={"problem": problem_type})
    else:
        # Refusals of client input are logged too: path tricks are worth seeing.
        log.info("refused: %s", exc, extra={"problem": problem_type})
    return problem_response(
        problem_type=problem_type,
        title=title,
        status=status,
        detail=str(exc),
        request_id=_request_id(request),
    )


async def handle_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    problem_type, title, status = VALIDATION_PROBLEM
    _remember(request, problem_type)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    return problem_response(
        problem_type=problem_type,
        title=title,
        status=status,
        detail=f"{where}: {first['msg']}" if where else str(first["msg"]),
        request_id=_request_id(request),
        errors=errors,
    )


async def handle_http_exception(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    problem_type, title = HTTP_STATUS_PROBLEMS.get(
        exc.status_code, (f"/problems/http-{exc.status_code}", "HTTP error")
    )
    _remember(request, problem_type)
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path only; each method of a
        # path is its own route here.
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem_response(
        problem_type=problem_type,
        title=title,
        status=exc.status_code,
        detail=str(exc.detail),
        request_id=_request_id(request),
        headers=headers or None,
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on this request's path."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


async def handle_database_error(request: Request, exc: Exception) -> ProblemResponse:
    """A database outage is a 503 the client may retry; any other database error is a bug."""
    if not is_database_outage(exc):
        log.error("unhandled database error", exc_info=exc)
        _remember(request, INTERNAL_PROBLEM[0])
        return internal_error_response(_request_id(request))
    return await handle_domain_error(request, database_unavailable(exc))


def database_unavailable(exc: BaseException) -> DependencyUnavailable:
    log.error("database unavailable: %s", exc)
    return DependencyUnavailable("the database cannot be reached; retry shortly")


def internal_error_response(request_id: str | None) -> ProblemResponse:
    problem_type, title, status = INTERNAL_PROBLEM
    return problem_response(
        problem_type=problem_type,
        title=title,
        status=status,
        detail="An unexpected error occurred; quote the request id when reporting it.",
        request_id=request_id,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, handle_domain_error)
    app.add_exception_handler(DriverError, handle_driver_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    for database_error in (SQLAlchemyDBAPIError, SQLAlchemyTimeoutError, DatabaseUnreachable):
        app.add_exception_handler(database_error, handle_database_error)
