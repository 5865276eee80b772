"""CORS whose refused preflights are problems like every other error."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from app.problems import problem_response

CORS_PROBLEM = ("/problems/cors-refused", "Cross-origin request refused")


class ProblemCORSMiddleware(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        problem_type, title = CORS_PROBLEM
        headers = {k: v for k, v in response.headers.items() if k.lower().startswith("access-")}
        return problem_response(
            problem_type=problem_type,
            title=title,
            status=response.status_code,
            detail=bytes(response.body).decode(),  # "Disallowed CORS origin, method"
            request_id=None,
            headers=headers,
        )
