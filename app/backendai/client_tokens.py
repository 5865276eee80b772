"""The upload and download tokens the Manager-facing API mints and the client-facing
``/upload`` and ``/download`` accept: HS256 JWTs with the claims of Backend.AI's proxy (the
client treats them as opaque, the Manager never looks inside), plus a ``jti`` for the logs and
an audience of their own, so that no other token of ours passes for one of them (nor one of
them for another)."""

from __future__ import annotations

import enum
import functools
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.auth.principal import Principal
from app.auth.transfer import TransferOperation, TransferScope
from app.backendai.auth import MANAGER_PRINCIPAL
from app.backendai.identity import VFolderId
from app.config import Settings
from app.errors import Forbidden, InvalidRequest, Unauthenticated
from drivers.errors import UnsafePath
from drivers.paths import RelativePath, parse_relative_path

CLIENT_TOKEN_AUDIENCE = "storage-proxy:backendai-client"  # noqa: S105 (a name, not a secret)
# Domain separation of the key derived in dev from the JWT secret: good for these tokens only.
CLIENT_TOKEN_KEY_INFO = b"storage-proxy backendai client token v1"


class ClientTokenOp(enum.StrEnum):
    UPLOAD = "upload"
    DOWNLOAD = "download"


class ClientTokenRefused(Unauthenticated):
    problem_type = "/problems/client-token-refused"
    title = "Invalid upload or download token"


class ClientTokenWrongOperation(Forbidden):
    problem_type = "/problems/client-token-operation"
    title = "The token is for another operation"


@functools.cache
def _derived_key(jwt_secret: str) -> str:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=CLIENT_TOKEN_KEY_INFO).derive(
        jwt_secret.encode("utf-8", "surrogatepass")
    )
    return raw.hex()


def client_token_secret(settings: Settings) -> str | None:
    """The configured secret; in dev, when unset, one derived from the JWT secret; elsewhere
    None (no client token is minted or accepted: prod requires the secret whenever the
    Manager-facing API is on)."""
    if settings.manager_client_token_secret:
        return settings.manager_client_token_secret
    if settings.effective_env == "dev":
        return _derived_key(settings.jwt_secret)
    return None


@dataclass(frozen=True, slots=True)
class ClientGrant:
    """What a verified token allows: one operation on one file of one folder."""

    op: ClientTokenOp
    volume: str
    vfid: VFolderId
    relpath: RelativePath
    jti: str
    session: uuid.UUID | None = None

    def principal(self, vfolder_id: uuid.UUID) -> Principal:
        """The Manager's identity, narrowed to this one file and operation: our services then
        check every access against the grant, as they do for our own transfer tokens."""
        scope = TransferScope(
            vfolder_id=vfolder_id,
            path=self.relpath,
            prefix=False,
            operation=TransferOperation(self.op.value),
            jti=self.jti,
        )
        return Principal(kind=MANAGER_PRINCIPAL.kind, id=MANAGER_PRINCIPAL.id, transfer=scope)


@dataclass(frozen=True, slots=True)
class ClientTokens:
    secret: str | None
    ttl_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientTokens:
        return cls(client_token_secret(settings), settings.manager_client_token_ttl_seconds)

    def mint_upload(
        self, *, volume: str, vfid: VFolderId, relpath: str, size: int, session: uuid.UUID
    ) -> str:
        return self._mint(
            {
                "op": ClientTokenOp.UPLOAD.value,
                "volume": volume,
                "vfid": str(vfid),
                "relpath": relpath,
                "size": size,
                "session": str(session),
            }
        )

    def mint_download(self, *, volume: str, vfid: VFolderId, relpath: str) -> str:
        return self._mint(
            {
                "op": ClientTokenOp.DOWNLOAD.value,
                "volume": volume,
                "vfid": str(vfid),
                "relpath": relpath,
            }
        )

    def _mint(self, claims: dict[str, Any]) -> str:
        if self.secret is None:
            raise InvalidRequest(
                "client tokens are disabled: STORAGE_MANAGER_CLIENT_TOKEN_SECRET is not set"
            )
        claims["exp"] = int(time.time()) + self.ttl_seconds
        claims["jti"] = secrets.token_urlsafe(16)
        claims["aud"] = CLIENT_TOKEN_AUDIENCE
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def verify(self, token: str | None, op: ClientTokenOp) -> ClientGrant:
        """Signature, expiry, audience, operation, and claims that name a file: raises
        ``ClientTokenRefused`` (401) or ``ClientTokenWrongOperation`` (403)."""
        if not token:
            raise ClientTokenRefused("the token query parameter is required")
        if self.secret is None:
            raise ClientTokenRefused("client tokens are disabled on this server")
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                audience=CLIENT_TOKEN_AUDIENCE,
                options={"require": ["exp", "aud", "jti", "op"]},
            )
        except jwt.ExpiredSignatureError:
            raise ClientTokenRefused("the token has expired") from None
        except jwt.PyJWTError as exc:
            raise ClientTokenRefused(f"invalid token: {exc}") from None
        if claims["op"] != op.value:
            refusal = ClientTokenWrongOperation(f"this token is for {claims['op']!r}, not {op}")
            refusal.denial = ("client-token", "wrong-operation")
            raise refusal
        return _grant(claims, op)


def _grant(claims: dict[str, Any], op: ClientTokenOp) -> ClientGrant:
    try:
        session = uuid.UUID(str(claims["session"])) if op is ClientTokenOp.UPLOAD else None
        relpath = parse_relative_path(str(claims["relpath"]))
        return ClientGrant(
            op=op,
            volume=str(claims["volume"]),
            vfid=VFolderId.parse(str(claims["vfid"])),
            relpath=relpath,
            jti=str(claims["jti"]),
            session=session,
        )
    except (KeyError, ValueError, InvalidRequest, UnsafePath):
        # Signed by us, so never expected: refused like any token we cannot read.
        raise ClientTokenRefused("malformed token claims") from None
