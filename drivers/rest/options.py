"""The options of a backend managed through a REST API, besides the POSIX ones (the data
moves over the mounted filesystem)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, HttpUrl

from drivers.options import PosixOptions


class RestApiOptions(PosixOptions):
    endpoint: HttpUrl = Field(description="Base URL of the management API, e.g. https://ontap1")
    verify_tls: bool = Field(
        default=True, description="Verify the API's certificate (turn off only in a lab)."
    )
    ca_bundle: Path | None = Field(
        default=None, description="A PEM file of CAs to verify the API's certificate with."
    )
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    retries: int = Field(default=3, ge=0, le=10, description="Retries of a failed safe call.")
    health_cache_seconds: float = Field(
        default=10.0, ge=0, description="How long a reachability check is reused."
    )
