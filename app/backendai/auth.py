"""The Manager's credential: ``X-BackendAI-Storage-Auth-Token``, the shared secret set in etcd
(``volumes/proxies/<name>/secret``). Whoever holds it is the Manager, with a service key's
rights: it acts for every user, as it does towards Backend.AI's own proxy."""

from __future__ import annotations

import hmac

from app.auth.principal import Principal, PrincipalKind
from app.errors import Forbidden
from app.observability.context import bind_log_fields

MANAGER_AUTH_HEADER = "X-BackendAI-Storage-Auth-Token"
MANAGER_PRINCIPAL = Principal(kind=PrincipalKind.SERVICE, id="backendai-manager")


def secret_matches(offered: str, secrets: list[str]) -> bool:
    """Constant time in the offered value; every configured secret is compared, so the time
    does not tell which one (if any) came close."""
    offered_bytes = offered.encode("utf-8", "surrogateescape")
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(offered_bytes, secret.encode())
    return found


def manager_principal(offered: str | None, secrets: list[str]) -> Principal:
    """The Manager, if ``offered`` (the header's value) is one of the configured secrets;
    else ``Forbidden``."""
    if offered is None or not secret_matches(offered, secrets):
        state = "missing" if offered is None else "invalid"
        refusal = Forbidden(f"{state} {MANAGER_AUTH_HEADER}")
        refusal.denial = ("authenticate", f"{state}-manager-token")
        raise refusal
    bind_log_fields(principal=f"service:{MANAGER_PRINCIPAL.id}")
    return MANAGER_PRINCIPAL
