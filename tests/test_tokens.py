"""User JWTs: every way a token can be wrong is a 401, and rotation works for both secrets
and public keys."""

from __future__ import annotations

import hashlib
import hmac as hmac_module
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from app.auth.principal import Principal, PrincipalKind
from app.auth.tokens import Authenticator
from app.auth.verified_tokens import VerifiedTokens
from app.errors import Unauthenticated
from tests.support.app import AUDIENCE, JWT_SECRET, SERVICE, SERVICE_KEY

ISSUER = "https://manager.example"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ED_KEY = ed25519.Ed25519PrivateKey.generate()
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def pem(key: Any) -> bytes:
    public: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "alice",
        "groups": ["lab"],
        "role": "user",
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now,
        "nbf": now,
        "exp": now + 6 * 3600,  # minted at collection: outlives a long suite
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def authenticator() -> Authenticator:
    return Authenticator(
        service_keys=[SERVICE_KEY],
        jwt_secrets=[JWT_SECRET, "previous-secret-still-accepted-0123456789"],
        public_keys=[RSA_KEY.public_key(), ED_KEY.public_key(), EC_KEY.public_key()],
        audience=AUDIENCE,
        issuer=ISSUER,
        leeway_seconds=30,
    )


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(claims(), JWT_SECRET, algorithm="HS256"),
        jwt.encode(claims(), "previous-secret-still-accepted-0123456789", algorithm="HS256"),
        jwt.encode(claims(), RSA_KEY, algorithm="RS256"),
        jwt.encode(claims(), ED_KEY, algorithm="EdDSA"),
        jwt.encode(claims(), EC_KEY, algorithm="ES256"),
    ],
    ids=["hs256", "hs256-previous-secret", "rs256", "eddsa", "es256"],
)
def test_accepted(token: str) -> None:
    principal = authenticator().authenticate(f"Bearer {token}")
    assert principal.user_id == "alice" and principal.groups == frozenset({"lab"})


def _tampered() -> str:
    token = jwt.encode(claims(), JWT_SECRET, algorithm="HS256")
    header, payload, signature = token.split(".")
    forged = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"user"', b'"admin"')
    ).decode()
    return f"{header}.{forged}.{signature}"


def _rsa_public_key_as_hmac_secret() -> str:
    # The classic confusion attack: sign HS256 with the (public) RSA key's PEM as secret.
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}').decode()
    body = jwt.utils.base64url_encode(json.dumps(claims()).encode()).decode()
    mac = hmac_module.new(pem(RSA_KEY), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{jwt.utils.base64url_encode(mac).decode()}"


def _alg_none() -> str:
    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    body = jwt.utils.base64url_encode(json.dumps(claims()).encode()).decode()
    return f"{header}.{body}."


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (jwt.encode(claims(exp=int(time.time()) - 120), JWT_SECRET), "expired"),
        (jwt.encode(claims(nbf=int(time.time()) + 6 * 3600), JWT_SECRET), "not valid yet"),
        (jwt.encode(claims(aud="another-service"), JWT_SECRET), "audience"),
        (jwt.encode(claims(iss="https://evil.example"), JWT_SECRET), "issuer"),
        (jwt.encode(claims(iss=None), JWT_SECRET), "'iss'"),
        (jwt.encode(claims(), "a-secret-nobody-configured-0123456789"), "signature"),
        (jwt.encode(claims(), OTHER_RSA_KEY, algorithm="RS256"), "signature"),
        (jwt.encode(claims(), JWT_SECRET * 2, algorithm="HS512"), "not accepted"),
        (_alg_none(), "not accepted"),
        (_rsa_public_key_as_hmac_secret(), "signature"),
        (_tampered(), "signature"),
        ("a.b.c", "invalid"),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "wrong-audience",
        "wrong-issuer",
        "missing-issuer",
        "unknown-secret",
        "unknown-rsa-key",
        "hs512",
        "alg-none",
        "rsa-key-as-hmac-secret",
        "tampered",
        "garbage",
    ],
)
def test_refused(token: str, reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason):
        authenticator().authenticate(f"Bearer {token}")


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    auth = Authenticator(
        service_keys=[SERVICE_KEY], jwt_secrets=[JWT_SECRET], audience=AUDIENCE, leeway_seconds=0
    )
    expires = int(time.time()) + 1
    token = jwt.encode(claims(iss=None, exp=expires), JWT_SECRET)
    first = auth.authenticate(f"Bearer {token}")
    assert auth.authenticate(f"Bearer {token}") == first  # the second from what it remembers
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    with pytest.raises(Unauthenticated, match="expired"):
        auth.authenticate(f"Bearer {token}")


def test_a_tampered_copy_of_a_remembered_token_is_still_refused() -> None:
    auth = authenticator()
    good = jwt.encode(claims(), JWT_SECRET, algorithm="HS256")
    assert auth.authenticate(f"Bearer {good}").role.value == "user"
    header, payload, signature = good.split(".")
    forged = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"user"', b'"admin"')
    ).decode()
    with pytest.raises(Unauthenticated, match="signature"):
        auth.authenticate(f"Bearer {header}.{forged}.{signature}")


def test_what_is_remembered_is_bounded_least_recently_used_first() -> None:
    remembered = VerifiedTokens(capacity=2)
    alice, bob, carol = (Principal(kind=PrincipalKind.USER, id=n) for n in ("a", "b", "c"))
    remembered.put("t-alice", alice, valid_until=100.0)
    remembered.put("t-bob", bob, valid_until=100.0)
    assert remembered.get("t-alice", now=1.0) == alice  # alice is now the most recent
    remembered.put("t-carol", carol, valid_until=100.0)
    assert len(remembered) == 2
    assert remembered.get("t-bob", now=1.0) is None
    assert remembered.get("t-alice", now=1.0) == alice
    assert remembered.get("t-carol", now=100.0) is None  # valid until, not through
    assert len(remembered) == 1


def test_act_as_headers_are_for_service_keys_only() -> None:
    auth = authenticator()
    acting = auth.authenticate(f"Bearer {SERVICE_KEY}", act_as_user="bob", act_as_groups="g1, g2")
    assert acting.kind is PrincipalKind.USER and acting.user_id == "bob"
    assert acting.groups == frozenset({"g1", "g2"}) and not acting.is_admin
    assert acting.acting_service == "service-key-1"
    user = auth.authenticate(
        f"Bearer {jwt.encode(claims(), JWT_SECRET)}", act_as_user="root", act_as_groups="admins"
    )
    assert user.user_id == "alice" and user.groups == frozenset({"lab"})


async def test_service_key_acting_for_a_user_sees_what_the_user_sees(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(
        "/v1/vfolders", json={"name": "x", "volume": "local", "owner_id": "carol"}, headers=SERVICE
    )
    vfolder_id = created.json()["id"]
    as_carol = {**SERVICE, "X-Act-As-User": "carol"}
    as_dave = {**SERVICE, "X-Act-As-User": "dave"}
    assert (await client.get(f"/v1/vfolders/{vfolder_id}", headers=as_carol)).status_code == 200
    assert (await client.get(f"/v1/vfolders/{vfolder_id}", headers=as_dave)).status_code == 404
