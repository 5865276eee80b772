"""Who is calling. Identities come from the Manager's tokens; the proxy stores none."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.auth.transfer import TransferScope


class PrincipalKind(enum.StrEnum):
    SERVICE = "service"
    USER = "user"


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    # For a service key: a non-secret label of the key ("service-key-1"); for a user: `sub`.
    id: str
    groups: frozenset[str] = field(default_factory=frozenset)
    role: Role = Role.USER
    # Groups whose vfolders this user may manage (share, rename, delete): JWT `managed_groups`.
    managed_groups: frozenset[str] = field(default_factory=frozenset)
    # Set when a service key acts for this user (X-Act-As-User): the label of that key.
    acting_service: str | None = None
    # Set when the credential is a transfer token: what it may do, and nothing else.
    transfer: TransferScope | None = None

    @property
    def is_admin(self) -> bool:
        """Service keys (the Manager, operators) and admin users see and change everything."""
        return self.kind is PrincipalKind.SERVICE or self.role is Role.ADMIN

    @property
    def user_id(self) -> str | None:
        return self.id if self.kind is PrincipalKind.USER else None
