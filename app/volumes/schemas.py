from __future__ import annotations

from pydantic import BaseModel, Field


class VolumeCapacity(BaseModel):
    total_bytes: int = Field(ge=0)
    used_bytes: int = Field(ge=0)
    free_bytes: int = Field(ge=0, description="Bytes available to unprivileged writers.")


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


class VolumeList(BaseModel):
    items: list[Volume]
