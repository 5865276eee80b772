"""OpenAPI building blocks: the problem schema and per-route error declarations."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.errors import Problem
from app.problems import PROBLEM_CONTENT_TYPE

_DESCRIPTIONS = {
    400: "Malformed request (bad cursor, missing owner…)",
    401: "Missing, expired or invalid credentials",
    403: "Authenticated, but not allowed",
    404: "Not found, or not visible to the caller",
    409: "Conflicts with the current state (name or id taken, still cloning, offset mismatch)",
    410: "The resource was deleted",
    412: "A precondition (If-Match, If-None-Match, Tus-Resumable) failed",
    413: "Too large: the request body, the upload (Upload-Length, Tus-Max-Size) or the quota",
    415: "Wrong Content-Type",
    416: "Range not satisfiable (`Content-Range: bytes */size`)",
    423: "Another request is writing this upload right now",
    460: "Upload-Checksum does not match the body (tus checksum extension)",
    422: "The request failed validation",
    503: "A storage backend or dependency is unavailable",
    507: "Not enough space left on the volume",
}


# What reaching a vfolder can answer (``AccessGate.authorize``): not visible to the
# caller (404), visible but not for this operation (403), still being cloned (409), deleted and
# waiting in the trash (410).
VFOLDER_ACCESS = (403, 404, 409, 410)


def problem_responses(*statuses: int, authenticated: bool = True) -> dict[int | str, Any]:
    """Error responses to declare on a route; 401, 403 (a transfer token used outside its
    scope, whatever the route) and 422 apply to every authenticated route."""
    wanted = sorted({*statuses, *((401, 403, 422) if authenticated else ())})
    return {
        status: {
            "model": Problem,
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_CONTENT_TYPE: {}},
        }
        for status in wanted
    }


# Statuses any operation can answer whatever its own code: from the connection or the body
# limit before routing (app.http_protocol, app.observability.body_limit), or a database
# outage (app.db.availability).
SERVER_STATUSES = {
    408: "The request head or body did not arrive in time (slow or stalled client)",
    413: "Request body larger than the operation accepts",
    414: "URL longer than the server accepts",
    431: "Request head (headers) larger than the server accepts",
    503: "The database or another dependency is unavailable; retry after `Retry-After`",
}


def declare_server_statuses(spec: dict[str, Any]) -> dict[str, Any]:
    """Every operation documents what the server answers before routing reaches it."""
    problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status, description in SERVER_STATUSES.items():
                responses.setdefault(
                    str(status),
                    {"description": description, "content": {PROBLEM_CONTENT_TYPE: problem}},
                )
    return spec


def problem_json_only(spec: dict[str, Any]) -> dict[str, Any]:
    """FastAPI files every response model under ``application/json``; error responses are
    ``application/problem+json`` only, so move their schema there."""
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if PROBLEM_CONTENT_TYPE in content and "application/json" in content:
                    content[PROBLEM_CONTENT_TYPE] = content.pop("application/json")
    return spec


def body_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """Every operation that takes a JSON body may answer 400, whatever the route declares: a
    body that is not UTF-8 JSON text cannot be parsed. (Over the body limit is 413, one of the
    ``SERVER_STATUSES``.)"""
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault(
                "400",
                {
                    "description": _DESCRIPTIONS[400],
                    "content": {
                        PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    },
                },
            )
    return spec


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = body_problems(
                declare_server_statuses(
                    problem_json_only(
                        get_openapi(
                            title=app.title,
                            version=app.version,
                            description=app.description,
                            routes=app.routes,
                        )
                    )
                )
            )
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]
