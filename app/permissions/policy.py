"""The single access check for vfolders. Every vfolder and file operation passes through
``authorize``, with the vfolder's access rules (owner, group mode, grants).

Effective mode = the strongest of: ``rwd`` for the owner of a user vfolder, the vfolder's
group mode for members of its owning group, every grant to the user or to one of their
groups; admins and service keys get ``rwd``. Reading needs ``ro``, writing ``rw``, deleting
files (and whatever else destroys an entry: moving over one, restoring a whole vfolder)
``rwd``; renaming, deleting and sharing the vfolder need a *manager*: the owning user,
an admin, or (group vfolders) a member whose token lists the group in ``managed_groups``.

A vfolder the caller has no mode on answers exactly like one that does not exist (404), so
existence never leaks; a visible vfolder with too weak a mode answers 403."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from uuid import UUID

from app.auth.principal import Principal, PrincipalKind
from app.errors import DomainError, Forbidden, VFolderIdNotAllowed, VFolderNotFound
from app.observability.logging import get_logger
from app.permissions.models import GranteeType, Mode

audit_log = get_logger("storage_proxy.audit")


class VFolderOperation(enum.StrEnum):
    READ = "read"  # metadata, listing, stat, download
    MOUNT = "mount"
    WRITE_FILES = "write-files"  # upload, mkdir, move onto a free name
    DELETE_FILES = "delete-files"  # and move over an existing entry
    RENAME = "rename"  # and the group mode
    DELETE = "delete"  # the vfolder itself
    SHARE = "share"  # grant, change, revoke, list grants
    SET_QUOTA = "set-quota"  # the vfolder's own quota
    RECONCILE = "reconcile"  # scan it now: whoever may write into it


NEEDED_MODE: dict[VFolderOperation, Mode] = {
    VFolderOperation.READ: Mode.RO,
    VFolderOperation.MOUNT: Mode.RO,
    VFolderOperation.WRITE_FILES: Mode.RW,
    VFolderOperation.RECONCILE: Mode.RW,
    VFolderOperation.DELETE_FILES: Mode.RWD,
}
MANAGER_OPERATIONS = frozenset(
    {
        VFolderOperation.RENAME,
        VFolderOperation.DELETE,
        VFolderOperation.SHARE,
        VFolderOperation.SET_QUOTA,
    }
)


@dataclass(frozen=True, slots=True)
class Owner:
    type: str
    id: str


@dataclass(frozen=True, slots=True)
class Grant:
    grantee_type: GranteeType
    grantee_id: str
    mode: Mode


@dataclass(frozen=True, slots=True)
class AccessRules:
    """Everything that decides who may do what on one vfolder."""

    owner: Owner
    group_mode: Mode
    grants: tuple[Grant, ...] = ()


@dataclass(frozen=True, slots=True)
class Access:
    mode: Mode | None
    manager: bool


@dataclass(frozen=True, slots=True)
class VisibilityScope:
    """What a non-admin may see: owned by them or their groups, or granted to either."""

    user_id: str | None
    group_ids: frozenset[str]


def _applies(principal: Principal, grantee_type: str, grantee_id: str) -> bool:
    if grantee_type == GranteeType.USER:
        return principal.user_id == grantee_id
    return grantee_id in principal.groups


# Service keys and admins: every mode on every vfolder, whatever its owner and grants.
ADMIN_ACCESS = Access(Mode.RWD, manager=True)


def access_of(principal: Principal, rules: AccessRules) -> Access:
    if principal.is_admin:
        return ADMIN_ACCESS
    modes: list[Mode] = []
    manager = False
    if _applies(principal, rules.owner.type, rules.owner.id):
        if rules.owner.type == GranteeType.USER:
            modes.append(Mode.RWD)
            manager = True
        else:
            modes.append(rules.group_mode)
            manager = rules.owner.id in principal.managed_groups
    modes += [g.mode for g in rules.grants if _applies(principal, g.grantee_type, g.grantee_id)]
    return Access(max(modes, key=lambda m: m.rank) if modes else None, manager=manager)


def authorize(
    principal: Principal, *, vfolder_id: UUID, rules: AccessRules, operation: VFolderOperation
) -> Access:
    """The caller's access, if it allows ``operation``; else ``VFolderNotFound`` (no mode at
    all) or ``Forbidden`` (visible, but not enough)."""
    access = access_of(principal, rules)
    if access.mode is None:
        raise _denied(
            VFolderNotFound(f"vfolder {vfolder_id} not found", vfolder_id=str(vfolder_id)),
            principal,
            vfolder_id,
            operation,
            reason="no-access",
        )
    if operation in MANAGER_OPERATIONS:
        if not access.manager:
            raise _denied(
                Forbidden(
                    f"{operation.value} needs the vfolder's owner, a group manager or an admin",
                    operation=operation.value,
                    mode=access.mode.value,
                ),
                principal,
                vfolder_id,
                operation,
                reason="not-manager",
            )
    elif not access.mode.covers(NEEDED_MODE[operation]):
        needed = NEEDED_MODE[operation]
        raise _denied(
            Forbidden(
                f"{operation.value} needs mode {needed.value}; you have {access.mode.value}",
                operation=operation.value,
                mode=access.mode.value,
                needed_mode=needed.value,
            ),
            principal,
            vfolder_id,
            operation,
            reason=f"mode-{access.mode.value}",
        )
    return access


def _denied(
    exc: DomainError,
    principal: Principal,
    vfolder_id: UUID,
    operation: VFolderOperation,
    *,
    reason: str,
) -> DomainError:
    """Audit the refusal; the problem handler counts it (``storage_access_denied_total``)."""
    exc.denial = (operation.value, reason)
    audit_log.warning(
        "access denied",
        extra={
            "audit": True,
            "principal": f"{principal.kind.value}:{principal.id}",
            "vfolder_id": str(vfolder_id),
            "operation": operation.value,
            "reason": reason,
        },
    )
    return exc


def authorize_create(principal: Principal, owner: Owner) -> None:
    """Users create vfolders for themselves or for a group they belong to."""
    if principal.is_admin or _applies(principal, owner.type, owner.id):
        return
    raise Forbidden(
        f"cannot create a vfolder owned by {owner.type} {owner.id!r}",
        owner_type=owner.type,
        owner_id=owner.id,
    )


def authorize_chosen_id(principal: Principal, chosen_id: UUID | None) -> None:
    """Only a service key (the Manager, also when it acts for a user) names a new vfolder's
    id. Refused for everyone else whatever the id, so no answer tells whether it is taken."""
    if chosen_id is None or principal.kind is PrincipalKind.SERVICE or principal.acting_service:
        return
    raise VFolderIdNotAllowed(
        "only a service key chooses a vfolder's id: leave `id` out and the proxy picks one"
    )


def visibility_scope(principal: Principal) -> VisibilityScope | None:
    """None means everything is visible."""
    if principal.is_admin:
        return None
    return VisibilityScope(user_id=principal.user_id, group_ids=principal.groups)
