"""Bearer credentials: service keys, and user JWTs signed by the Manager with a shared HS256
secret or with a private key whose public half (RS256, ES256, EdDSA) is configured here.

Several keys and secrets are accepted at once, so either can be rotated without downtime.
The algorithm a token names only selects among keys configured *for that algorithm family*:
an HMAC secret is never tried as a public key nor the reverse, and ``none`` never verifies."""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from app.auth.principal import Principal, PrincipalKind, Role
from app.auth.transfer import principal_from_transfer_claims, transfer_audience
from app.auth.verified_tokens import VerifiedTokens
from app.config import ConfigurationError, Settings
from app.errors import Unauthenticated

JWT_ALGORITHM = "HS256"  # what `storage-proxy token` mints
HMAC_ALGORITHMS = frozenset({"HS256"})
# Each algorithm is verified only with keys of its own kind.
PUBLIC_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "RS256": (rsa.RSAPublicKey,),
    "ES256": (ec.EllipticCurvePublicKey,),
    "EdDSA": (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey),
}
PUBLIC_KEY_ALGORITHMS = frozenset(PUBLIC_KEY_TYPES)
REQUIRED_CLAIMS = ("sub", "exp", "aud")
MAX_GROUPS = 1024


class Authenticator:
    def __init__(
        self,
        *,
        service_keys: Sequence[str],
        jwt_secrets: Sequence[str],
        audience: str,
        leeway_seconds: int,
        public_keys: Sequence[Any] = (),
        issuer: str | None = None,
    ) -> None:
        self._service_keys = [key.encode() for key in service_keys if key]
        self._secrets = [secret.encode() for secret in jwt_secrets if secret]
        self._public_keys = list(public_keys)
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway_seconds
        self._verified = VerifiedTokens()

    @property
    def audience(self) -> str:
        return self._audience

    @property
    def issuer(self) -> str | None:
        return self._issuer

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        return cls(
            service_keys=settings.service_keys,
            jwt_secrets=[settings.jwt_secret, *settings.jwt_previous_secrets],
            public_keys=[_load_public_key(path) for path in settings.jwt_public_keys],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway_seconds=settings.jwt_leeway_seconds,
        )

    def authenticate(
        self,
        authorization: str | None,
        *,
        act_as_user: str | None = None,
        act_as_groups: str | None = None,
    ) -> Principal:
        """Raises ``Unauthenticated`` with a reason a client can act on. The act-as values
        (from documented headers) are honoured for service keys only."""
        if not authorization:
            raise Unauthenticated("missing Authorization header (expected: Bearer <token>)")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthenticated("Authorization must use the Bearer scheme")
        service = self._match_service_key(credential.encode())
        if service is None:
            return self._token_principal(credential)
        if act_as_user:
            groups = [g.strip() for g in (act_as_groups or "").split(",") if g.strip()]
            return _principal_from_claims(
                {"sub": act_as_user, "groups": groups}, acting_service=service.id
            )
        return service

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

    def _token_principal(self, token: str) -> Principal:
        now = time.time()
        known = self._verified.get(token, now=now)
        if known is not None:
            return known
        if _audience_of(token) == transfer_audience(self._audience):
            claims = self.decode(token, audience=transfer_audience(self._audience))
            principal = principal_from_transfer_claims(claims)
        else:
            claims = self.decode(token)
            principal = _principal_from_claims(claims)
        # decode() required a numeric exp and checked it against now - leeway.
        self._verified.put(token, principal, valid_until=float(claims["exp"]) + self._leeway)
        return principal

    def decode(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """Verified claims of any token this proxy accepts; raises ``Unauthenticated``."""
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError:
            raise Unauthenticated("invalid token") from None
        if algorithm in HMAC_ALGORITHMS:
            keys: list[Any] = list(self._secrets)
        elif algorithm in PUBLIC_KEY_ALGORITHMS:
            key_type = PUBLIC_KEY_TYPES[str(algorithm)]
            keys = [key for key in self._public_keys if isinstance(key, key_type)]
        else:
            raise Unauthenticated(f"token algorithm {algorithm!r} is not accepted")
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=[str(algorithm)],
                    audience=audience or self._audience,
                    issuer=self._issuer,
                    leeway=self._leeway,
                    options={"require": [*REQUIRED_CLAIMS, *(["iss"] if self._issuer else [])]},
                )
            except (jwt.InvalidSignatureError, jwt.InvalidKeyError):
                continue  # signed with another of the accepted keys, perhaps
            except jwt.ExpiredSignatureError:
                raise Unauthenticated("token expired") from None
            except jwt.ImmatureSignatureError:
                raise Unauthenticated("token not valid yet (nbf)") from None
            except jwt.InvalidAudienceError:
                raise Unauthenticated("token audience is not this storage proxy") from None
            except jwt.InvalidIssuerError:
                raise Unauthenticated("token issuer is not the configured one") from None
            except jwt.MissingRequiredClaimError as exc:
                raise Unauthenticated(f"token lacks the {exc.claim!r} claim") from None
            except jwt.InvalidTokenError:
                raise Unauthenticated("invalid token") from None
            return claims
        raise Unauthenticated("invalid token signature")


def _audience_of(token: str) -> object:
    try:
        return jwt.decode(token, options={"verify_signature": False}).get("aud")
    except jwt.InvalidTokenError:
        return None


def _load_public_key(path: Path) -> Any:
    try:
        return load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot load JWT public key {path}: {exc}") from exc


def _principal_from_claims(
    claims: dict[str, Any], *, acting_service: str | None = None
) -> Principal:
    sub = claims.get("sub")
    groups = claims.get("groups", [])
    role = claims.get("role", Role.USER.value)
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise Unauthenticated("token 'sub' must be a non-empty string")
    if (
        not isinstance(groups, list)
        or len(groups) > MAX_GROUPS
        or not all(isinstance(g, str) and g and len(g) <= 255 for g in groups)
    ):
        raise Unauthenticated("token 'groups' must be a list of strings")
    if role not in {r.value for r in Role}:
        raise Unauthenticated("token 'role' must be 'user' or 'admin'")
    managed = claims.get("managed_groups", [])
    if not isinstance(managed, list) or not all(isinstance(g, str) and g for g in managed):
        raise Unauthenticated("token 'managed_groups' must be a list of strings")
    return Principal(
        kind=PrincipalKind.USER,
        id=sub,
        groups=frozenset(groups),
        role=Role(str(role)),
        managed_groups=frozenset(managed) & frozenset(groups),
        acting_service=acting_service,
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
    issuer: str | None = None,
    managed_groups: Sequence[str] = (),
) -> str:
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {
        "sub": user_id,
        "groups": list(groups),
        "role": role.value,
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
    }
    if issuer:
        payload["iss"] = issuer
    if managed_groups:
        payload["managed_groups"] = list(managed_groups)
    return jwt.encode(payload, secret, algorithm=JWT_ALGORITHM)
