"""tus plumbing around the upload routes: `X-HTTP-Method-Override` (for clients behind
proxies that only pass GET and POST), `Tus-Resumable` on every response but OPTIONS, and
`Tus-Version` on a 412 so the client learns what we speak."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.uploads.protocol import TUS_VERSION

# Backend.AI's client-facing /upload (app/backendai/client_router.py) speaks tus too.
UPLOAD_PATHS = re.compile(r"^/v1/vfolders/[^/]+/uploads(/[^/]+)?$|^/upload$")
OVERRIDABLE = frozenset({"PATCH", "DELETE", "HEAD", "GET", "OPTIONS"})


class TusMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not UPLOAD_PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST":
            for name, value in scope.get("headers", ()):
                if name == b"x-http-method-override":
                    method = value.decode("latin-1").upper()
                    if method in OVERRIDABLE:
                        scope = {**scope, "method": method}
        is_options = scope["method"] == "OPTIONS"

        async def send_with_tus_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not is_options:
                    headers.append((b"tus-resumable", TUS_VERSION.encode()))
                if message["status"] == 412:
                    headers.append((b"tus-version", TUS_VERSION.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_tus_headers)
