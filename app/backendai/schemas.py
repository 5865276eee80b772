"""Request bodies of the Manager-facing API, as the 23.9 Manager sends them (JSON, also on
GET). Keys a newer Manager adds are ignored rather than refused."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ManagerRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")


class VolumeRequest(ManagerRequest):
    volume: str


class FolderRequest(VolumeRequest):
    vfid: str


class FolderCreateRequest(FolderRequest):
    options: dict[str, Any] | None = None


class FolderMountRequest(FolderRequest):
    subpath: str = "."


class FolderCloneRequest(ManagerRequest):
    src_volume: str
    src_vfid: str
    dst_volume: str
    dst_vfid: str


class QuotaScopeRequest(VolumeRequest):
    qsid: str


class QuotaScopeOptions(ManagerRequest):
    # Arrives as a JSON float (10737418240.0): the Manager's GraphQL BigInt goes through one.
    limit_bytes: float | None = Field(default=None, ge=0)


class QuotaScopeUpdateRequest(QuotaScopeRequest):
    options: QuotaScopeOptions | None = None


class VolumeQuotaUpdateRequest(FolderRequest):
    size_bytes: float = Field(ge=0)
