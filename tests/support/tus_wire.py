"""A tus PATCH as a client sends it to a real server, for the crash and multi-node tests."""

from __future__ import annotations

from collections.abc import Mapping

import httpx


def tus_patch(
    url: str, offset: int, data: bytes, *, headers: Mapping[str, str], timeout: float = 60
) -> httpx.Response:
    """PATCH ``data`` at ``offset`` of the upload at ``url``; ``headers`` authenticate."""
    return httpx.patch(
        url,
        headers={
            **headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
        content=data,
        timeout=timeout,
    )
