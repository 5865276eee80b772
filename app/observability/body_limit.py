"""Refuses oversized request bodies before they are buffered.

FastAPI reads a JSON body whole into memory, so an absurd one must be stopped at the door: by
its Content-Length when declared, by counting when it is chunked. Endpoints that stream a
body to disk (file uploads) must be exempted here and enforce their own limits."""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import HTTP_STATUS_PROBLEMS
from app.problems import problem_response

MAX_BODY_BYTES = 1024 * 1024


class BodySizeLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES, streaming_paths: str = "(?!)"
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streaming_paths = re.compile(streaming_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.streaming_paths.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the body reader, which passes HTTP exceptions through to
                    # the problem handlers (anything else it would turn into a vague 400).
                    raise HTTPException(413, self._detail)
            return message

        await self.app(scope, counting_receive, send)

    @property
    def _detail(self) -> str:
        return f"request body larger than {self.max_bytes} bytes"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem_type, title = HTTP_STATUS_PROBLEMS[413]
        state = scope.setdefault("state", {})
        state["problem_type"] = problem_type
        response = problem_response(
            problem_type=problem_type,
            title=title,
            status=413,
            detail=self._detail,
            request_id=state.get("request_id"),
            headers={"Connection": "close"},
            limit_bytes=self.max_bytes,
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
