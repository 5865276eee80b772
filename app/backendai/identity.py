"""Backend.AI's identifiers and ours: a quota scope ``user:<uuid>`` / ``project:<uuid>`` is our
user / group owner (and its quota scope on the volume); a vfid ``<quota scope>/<uuid hex>`` is
our vfolder with that uuid."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.errors import InvalidRequest
from app.quotas.models import ScopeType
from app.vfolders.models import OwnerType

_SCOPE_KINDS = {"user": OwnerType.USER, "project": OwnerType.GROUP}
_KIND_OF_OWNER = {owner: kind for kind, owner in _SCOPE_KINDS.items()}


@dataclass(frozen=True, slots=True)
class QuotaScopeId:
    """``user:<uuid>`` or ``project:<uuid>``."""

    owner_type: OwnerType
    scope_uuid: uuid.UUID

    @classmethod
    def parse(cls, text: str) -> QuotaScopeId:
        kind, sep, rest = text.partition(":")
        if not sep or kind not in _SCOPE_KINDS:
            raise InvalidRequest(
                f"quota scope {text!r} is not 'user:<uuid>' or 'project:<uuid>'", qsid=text
            )
        try:
            scope_uuid = uuid.UUID(rest)
        except ValueError:
            raise InvalidRequest(
                f"quota scope {text!r} does not end in a UUID", qsid=text
            ) from None
        return cls(_SCOPE_KINDS[kind], scope_uuid)

    @property
    def owner_id(self) -> str:
        """Our owner id: the canonical hyphenated UUID, as the Manager's tokens carry it."""
        return str(self.scope_uuid)

    @property
    def scope_type(self) -> ScopeType:
        return ScopeType.USER if self.owner_type is OwnerType.USER else ScopeType.GROUP

    def __str__(self) -> str:
        return f"{_KIND_OF_OWNER[self.owner_type]}:{self.scope_uuid}"


@dataclass(frozen=True, slots=True)
class VFolderId:
    """``<quota scope>/<folder uuid hex>``."""

    quota_scope: QuotaScopeId
    folder_id: uuid.UUID

    @classmethod
    def parse(cls, text: str) -> VFolderId:
        scope, sep, folder = text.rpartition("/")
        if not sep:
            raise InvalidRequest(f"vfid {text!r} is not '<quota scope>/<folder id>'", vfid=text)
        try:
            folder_id = uuid.UUID(folder)
        except ValueError:
            raise InvalidRequest(f"vfid {text!r} does not end in a folder id", vfid=text) from None
        return cls(QuotaScopeId.parse(scope), folder_id)

    @property
    def generated_name(self) -> str:
        """The name a folder the Manager creates gets here: unique, as its id is (the
        Manager keeps the human name itself)."""
        return f"bai-{self.folder_id.hex}"

    def __str__(self) -> str:
        return f"{self.quota_scope}/{self.folder_id.hex}"
