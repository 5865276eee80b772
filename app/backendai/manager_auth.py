"""The Manager's shared secret, checked once per request before routing: every call of the
Manager-facing app needs it but the status ones, as on Backend.AI's own proxy."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from app.backendai.auth import MANAGER_AUTH_HEADER, manager_principal
from app.errors import Forbidden
from app.problems import handle_domain_error

OPEN_PATHS = frozenset({"/", "/status"})
_HEADER = MANAGER_AUTH_HEADER.lower().encode("latin-1")


class ManagerAuthMiddleware:
    """A refusal is the same problem response (and audit) a route's refusal is. Checked here
    rather than as a dependency of each route, which cost a fifth of a cheap call."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        offered = next(
            (value.decode("latin-1") for name, value in scope["headers"] if name == _HEADER),
            None,
        )
        secrets: list[str] = scope["app"].state.runtime.settings.manager_api_secret
        try:
            manager_principal(offered, secrets)
        except Forbidden as refusal:
            if not _is_routed(scope):
                await self.app(scope, receive, send)  # no such call: the app's 404
                return
            response = await handle_domain_error(Request(scope), refusal)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_routed(scope: Scope) -> bool:
    return any(route.matches(scope)[0] is not Match.NONE for route in scope["app"].router.routes)
