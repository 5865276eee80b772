"""Bearer authentication: service keys and user JWTs, every failure a 401 problem."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from app.auth.principal import PrincipalKind, Role
from app.auth.tokens import Authenticator, mint_user_token
from app.errors import Unauthenticated
from tests.support.app import AUDIENCE, JWT_SECRET, SERVICE_KEY, bearer, user_token


def authenticator(*keys: str) -> Authenticator:
    return Authenticator(
        service_keys=keys or (SERVICE_KEY,),
        jwt_secrets=[JWT_SECRET],
        audience=AUDIENCE,
        leeway_seconds=30,
    )


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "alice",
        "groups": ["lab"],
        "role": "user",
        "aud": AUDIENCE,
        "iat": now,
        # Parametrized tokens are minted at collection: they must outlive the whole suite.
        "exp": now + 6 * 3600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_service_keys_rotate_several_accepted() -> None:
    auth = authenticator("old-key-" + "x" * 32, "new-key-" + "y" * 32)
    assert auth.authenticate("Bearer new-key-" + "y" * 32).id == "service-key-2"
    principal = auth.authenticate("Bearer old-key-" + "x" * 32)
    assert principal.kind is PrincipalKind.SERVICE and principal.is_admin


def test_user_token_round_trip() -> None:
    token = mint_user_token(
        secret=JWT_SECRET, audience=AUDIENCE, user_id="u1", groups=["g1", "g2"], role=Role.ADMIN
    )
    principal = authenticator().authenticate(f"Bearer {token}")
    assert principal.user_id == "u1"
    assert principal.groups == frozenset({"g1", "g2"})
    assert principal.is_admin


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing Authorization"),
        ("", "missing Authorization"),
        ("Basic YWxpY2U6cHc=", "Bearer scheme"),
        ("Bearer", "Bearer scheme"),
        ("Bearer not-a-jwt", "invalid token"),
        ("Bearer " + SERVICE_KEY[:-1], "invalid token"),
        (
            "Bearer " + jwt.encode(claims(exp=int(time.time()) - 120), JWT_SECRET),
            "expired",
        ),
        ("Bearer " + jwt.encode(claims(aud="someone-else"), JWT_SECRET), "audience"),
        ("Bearer " + jwt.encode(claims(aud=None), JWT_SECRET), "'aud'"),
        ("Bearer " + jwt.encode(claims(exp=None), JWT_SECRET), "'exp'"),
        ("Bearer " + jwt.encode(claims(sub=None), JWT_SECRET), "'sub'"),
        ("Bearer " + jwt.encode(claims(), "a-different-secret-of-enough-length!"), "invalid"),
        ("Bearer " + jwt.encode(claims(), key="", algorithm="none"), "not accepted"),
        ("Bearer " + jwt.encode(claims(groups="lab"), JWT_SECRET), "'groups'"),
        ("Bearer " + jwt.encode(claims(role="root"), JWT_SECRET), "'role'"),
        ("Bearer " + jwt.encode(claims(sub=""), JWT_SECRET), "'sub'"),
    ],
)
def test_refusals(header: str | None, reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason):
        authenticator().authenticate(header)


def test_tampered_payload_is_refused() -> None:
    token = mint_user_token(secret=JWT_SECRET, audience=AUDIENCE, user_id="alice")
    header, payload, signature = token.split(".")
    forged_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"alice"', b'"admin"')
    ).decode()
    with pytest.raises(Unauthenticated):
        authenticator().authenticate(f"Bearer {header}.{forged_payload}.{signature}")


def test_small_clock_skew_is_tolerated() -> None:
    token = jwt.encode(claims(exp=int(time.time()) - 5), JWT_SECRET)
    assert authenticator().authenticate(f"Bearer {token}").user_id == "alice"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("forged"),
        bearer(user_token("alice", ttl=-3600)),
        bearer(mint_user_token(secret="x" * 40, audience=AUDIENCE, user_id="alice")),
    ],
)
async def test_every_v1_route_needs_credentials(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    some_id = "7a1f0000-0000-4000-8000-000000000000"
    for method, path in [
        ("GET", "/v1/volumes"),
        ("GET", "/v1/volumes/local"),
        ("GET", "/v1/vfolders"),
        ("POST", "/v1/vfolders"),
        ("GET", f"/v1/vfolders/{some_id}"),
        ("PATCH", f"/v1/vfolders/{some_id}"),
        ("DELETE", f"/v1/vfolders/{some_id}"),
        ("GET", f"/v1/vfolders/{some_id}/mount"),
    ]:
        response = await client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "/problems/unauthenticated"
        assert response.headers["www-authenticate"].startswith("Bearer")
