"""Two listeners, one process: the main API and the Manager-facing API share the runtime (the
database engine, cache, volumes, task runner) but never their routes. A request goes to the
Manager-facing app only when it arrived on the Manager-facing socket."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send


class ListenerDispatch:
    def __init__(self, main: FastAPI, manager: FastAPI, *, manager_port: int) -> None:
        self.main = main
        self.manager = manager
        self.manager_port = manager_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # One lifespan builds the runtime both apps serve from.
            await self.main(scope, receive, send)
            return
        server = scope.get("server")
        if server is not None and server[1] == self.manager_port:
            await self.manager(scope, receive, send)
        else:
            await self.main(scope, receive, send)
