"""Transfer tokens: short-lived JWTs for one vfolder, one path (or prefix) and one
operation, for browsers and tus clients that cannot hold a user token.

A token records who minted it; every use is checked against that minter's rights *now*,
so the minter's rights are a ceiling and revoking a grant invalidates every token minted
under it. The audience differs from user tokens', so neither passes for the other."""

from __future__ import annotations

import enum
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from app.auth.principal import Principal, PrincipalKind, Role
from app.errors import TransferTokenMisused, Unauthenticated
from drivers.errors import UnsafePath
from drivers.paths import RelativePath, parse_relative_path

TRANSFER_AUDIENCE_SUFFIX = ":transfer"
MAX_TTL_SECONDS = 24 * 3600


class TransferOperation(enum.StrEnum):
    DOWNLOAD = "download"
    UPLOAD = "upload"


@dataclass(frozen=True, slots=True)
class TransferScope:
    vfolder_id: uuid.UUID
    path: RelativePath
    prefix: bool
    operation: TransferOperation
    jti: str

    def check(
        self, *, vfolder_id: uuid.UUID, path: RelativePath, operation: TransferOperation
    ) -> None:
        """Raises ``TransferTokenMisused`` unless this token covers the request."""
        if operation is not self.operation:
            raise TransferTokenMisused(f"this transfer token is for {self.operation.value} only")
        if vfolder_id != self.vfolder_id:
            raise TransferTokenMisused("this transfer token is for another vfolder")
        if not self.covers(path):
            raise TransferTokenMisused(f"this transfer token does not cover {path or '/'}")

    def covers(self, path: RelativePath) -> bool:
        return path.is_within(self.path) if self.prefix else path == self.path


def transfer_audience(audience: str) -> str:
    return audience + TRANSFER_AUDIENCE_SUFFIX


@dataclass(frozen=True, slots=True)
class TransferMinter:
    secret: str
    audience: str
    issuer: str | None

    def mint(
        self,
        *,
        minter: Principal,
        vfolder_id: uuid.UUID,
        path: RelativePath,
        prefix: bool,
        operation: TransferOperation,
        ttl_seconds: int,
    ) -> tuple[str, str, int]:
        return mint_transfer_token(
            secret=self.secret,
            audience=self.audience,
            issuer=self.issuer,
            minter=minter,
            vfolder_id=vfolder_id,
            path=path,
            prefix=prefix,
            operation=operation,
            ttl_seconds=ttl_seconds,
        )


def mint_transfer_token(
    *,
    secret: str,
    audience: str,
    issuer: str | None,
    minter: Principal,
    vfolder_id: uuid.UUID,
    path: RelativePath,
    prefix: bool,
    operation: TransferOperation,
    ttl_seconds: int,
) -> tuple[str, str, int]:
    """(token, jti, expiry as a Unix time)."""
    now = int(time.time())
    jti = secrets.token_urlsafe(16)
    claims: dict[str, Any] = {
        "sub": minter.id,
        "kind": minter.kind.value,
        "groups": sorted(minter.groups),
        "managed_groups": sorted(minter.managed_groups),
        "role": minter.role.value,
        "aud": transfer_audience(audience),
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": jti,
        "vfolder": str(vfolder_id),
        "path": str(path),
        "prefix": prefix,
        "op": operation.value,
    }
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256"), jti, now + ttl_seconds


def _scope_path(claim: object) -> RelativePath:
    """The path exactly as minted (normalised): signed, but checked again like client text."""
    if not isinstance(claim, str):
        raise ValueError("path must be a string")
    try:
        path = parse_relative_path(claim)
    except UnsafePath as exc:
        raise ValueError(str(exc)) from None
    if str(path) != claim:
        raise ValueError("path is not in its normal form")
    return path


def principal_from_transfer_claims(claims: dict[str, Any]) -> Principal:
    try:
        scope = TransferScope(
            vfolder_id=uuid.UUID(str(claims["vfolder"])),
            path=_scope_path(claims["path"]),
            prefix=bool(claims["prefix"]),
            operation=TransferOperation(claims["op"]),
            jti=str(claims["jti"]),
        )
        kind = PrincipalKind(claims["kind"])
        return Principal(
            kind=kind,
            id=str(claims["sub"]),
            groups=frozenset(claims.get("groups", [])),
            managed_groups=frozenset(claims.get("managed_groups", [])),
            role=Role(claims.get("role", Role.USER.value)),
            transfer=scope,
        )
    except (KeyError, ValueError, TypeError):
        raise Unauthenticated("malformed transfer token") from None
