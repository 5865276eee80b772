"""Errors the way the Backend.AI Manager reads them.

The Manager (aiohttp's ``ClientResponse.json()``) parses an error body only when it is served
as ``application/json``, pops its ``msg`` and shows it to the user; any other body becomes
"Storage proxy responded with <status>". So every problem this listener renders is re-served
as ``application/json``: the same RFC 9457 members, plus ``msg`` (the detail) and, where the
problem is a file-system condition, the ``errno`` and ``paths`` Backend.AI's proxy sends."""

from __future__ import annotations

import errno
import json
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.problems import PROBLEM_CONTENT_TYPE

# The problems that are file-system conditions, as the errno a Backend.AI client knows.
ERRNO_OF_PROBLEM = {
    "/problems/path-exists": errno.EEXIST,
    "/problems/destination-exists": errno.EEXIST,
    "/problems/path-not-found": errno.ENOENT,
    "/problems/is-a-directory": errno.EISDIR,
    "/problems/not-a-directory": errno.ENOTDIR,
    "/problems/not-a-regular-file": errno.EISDIR,
    "/problems/directory-not-empty": errno.ENOTEMPTY,
    "/problems/quota-exceeded": errno.EDQUOT,
    "/problems/insufficient-storage": errno.ENOSPC,
    "/problems/unsafe-path": errno.EINVAL,
    "/problems/symlink-not-followed": errno.ELOOP,
    "/problems/invalid-move": errno.EINVAL,
}


def manager_error_body(problem: dict[str, Any], paths: list[str] | None) -> dict[str, Any]:
    body = {"msg": problem.get("detail") or problem.get("title") or "error", **problem}
    code = ERRNO_OF_PROBLEM.get(str(problem.get("type", "")))
    if code is not None:
        body.setdefault("errno", code)
        if paths:
            body.setdefault("paths", paths)
    return body


class ManagerErrorBodies:
    """Pure ASGI: only error bodies (small JSON) are held, to be rewritten; every other
    response streams through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewriting_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                content_type = MutableHeaders(raw=message["headers"]).get("content-type", "")
                if content_type.startswith(PROBLEM_CONTENT_TYPE):
                    start = message
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await _send_rewritten(start, b"".join(chunks), scope, send)
                return
            await send(message)

        await self.app(scope, receive, rewriting_send)


async def _send_rewritten(start: Message, raw: bytes, scope: Scope, send: Send) -> None:
    try:
        problem = json.loads(raw)
    except ValueError:
        problem = {"detail": raw.decode("utf-8", "replace")}
    body = json.dumps(manager_error_body(problem, scope.get("state", {}).get("bai_paths"))).encode()
    headers = MutableHeaders(raw=list(start["headers"]))
    headers["content-type"] = "application/json"
    headers["content-length"] = str(len(body))
    await send({**start, "headers": headers.raw})
    await send({"type": "http.response.body", "body": body})
