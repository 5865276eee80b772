"""Bearer credentials: service keys and user JWTs (HS256 with the configured secret)."""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence

import jwt

from app.auth.principal import Principal, PrincipalKind, Role
from app.errors import Unauthenticated

JWT_ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "exp", "aud")


class Authenticator:
    def __init__(
        self,
        *,
        service_keys: Sequence[str],
        jwt_secret: str,
        audience: str,
        leeway_seconds: int,
    ) -> None:
        self._service_keys = [key.encode() for key in service_keys if key]
        self._jwt_secret = jwt_secret
        self._audience = audience
        self._leeway = leeway_seconds

    def authenticate(self, authorization: str | None) -> Principal:
        """Raises ``Unauthenticated`` with a reason a client can act on."""
        if not authorization:
            raise Unauthenticated("missing Authorization header (expected: Bearer <token>)")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthenticated("Authorization must use the Bearer scheme")
        service = self._match_service_key(credential.encode())
        if service is not None:
            return service
        return self._decode_user_token(credential)

    def _match_service_key(self, candidate: bytes) -> Principal | None:
        matched: int | None = None
        # Compare against every key, in constant time each, so timing reveals nothing about
        # which key (or how much of one) matched.
        for index, key in enumerate(self._service_keys):
            if hmac.compare_digest(candidate, key):
                matched = index
        if matched is None:
            return None
        return Principal(kind=PrincipalKind.SERVICE, id=f"service-key-{matched + 1}")

    def _decode_user_token(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._jwt_secret,
                algorithms=[JWT_ALGORITHM],
                audience=self._audience,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("token audience is not this storage proxy") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("invalid token") from None
        return _principal_from_claims(claims)


def _principal_from_claims(claims: dict[str, object]) -> Principal:
    sub = claims.get("sub")
    groups = claims.get("groups", [])
    role = claims.get("role", Role.USER.value)
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise Unauthenticated("token 'sub' must be a non-empty string")
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise Unauthenticated("token 'groups' must be a list of strings")
    if role not in {r.value for r in Role}:
        raise Unauthenticated("token 'role' must be 'user' or 'admin'")
    return Principal(
        kind=PrincipalKind.USER, id=sub, groups=frozenset(groups), role=Role(str(role))
    )


def mint_user_token(
    *,
    secret: str,
    audience: str,
    user_id: str,
    groups: Sequence[str] = (),
    role: Role = Role.USER,
    ttl_seconds: int = 3600,
    now: float | None = None,
) -> str:
    issued = int(time.time() if now is None else now)
    payload = {
        "sub": user_id,
        "groups": list(groups),
        "role": role.value,
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    return jwt.encode(payload, secret, algorithm=JWT_ALGORITHM)
