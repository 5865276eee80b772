from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class VolumeCapacity(BaseModel):
    total_bytes: int = Field(ge=0)
    used_bytes: int = Field(ge=0)
    free_bytes: int = Field(ge=0, description="Bytes available to unprivileged writers.")


class ManagementApiStatus(BaseModel):
    reachable: bool = Field(description="Whether it answered with the proxy's credentials.")
    detail: str | None = Field(description="Why not, in the storage system's words.")
    checked_at: datetime = Field(
        description="When it was asked; an answer is reused for a few seconds "
        "(`health_cache_seconds`), so that scrapes do not hammer the array."
    )


class Volume(BaseModel):
    name: str
    backend: str = Field(description="Driver name, e.g. `posix`.")
    capabilities: list[str] = Field(
        description="Optional capabilities the driver implements natively: "
        "`quota`, `fast-usage`, `snapshot`, `fast-clone`."
    )
    capacity: VolumeCapacity | None = Field(
        description="Filesystem capacity; null when the backend cannot be reached right now."
    )
    management_api: ManagementApiStatus | None = Field(
        description="The storage system's management API (quotas, usage and snapshots go "
        "through it; data moves over the mount). Null for backends managed through the "
        "filesystem itself."
    )


class VolumeList(BaseModel):
    items: list[Volume]
