"""A volume that runs out of space mid-body: the write is refused as 507
``/problems/insufficient-storage`` (never a 500), and nothing of it remains. The volume is a
small tmpfs, so the kernel's own ENOSPC is what the proxy meets."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from app.config import Settings
from tests.files.conftest import ALICE
from tests.support.app import client_for

MIB = 1024 * 1024


@pytest.fixture
def full_volume(settings: Settings) -> Iterator[Path]:
    """The ``local`` volume's root on a 2 MiB tmpfs (root only)."""
    root = settings.data_dir / "volumes" / "local"
    root.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip("a full volume needs a tmpfs mount, and mounting needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(root)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield root
    finally:
        subprocess.run(["umount", "--lazy", str(root)], check=False)


async def _megabytes(count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"z" * MIB


async def test_a_body_that_fills_the_volume_is_a_507_and_leaves_nothing(
    settings: Settings, full_volume: Path
) -> None:
    async with client_for(settings) as client:
        created = await client.post(
            "/v1/vfolders", json={"name": "full", "volume": "local"}, headers=ALICE
        )
        assert created.status_code == 201
        base = f"/v1/vfolders/{created.json()['id']}"
        # No Content-Length: nothing can refuse it up front, the disk does.
        reply = await client.put(f"{base}/files/big.bin", content=_megabytes(8), headers=ALICE)
        assert reply.status_code == 507, reply.text
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json()["type"] == "/problems/insufficient-storage"
        usage = (await client.get(f"{base}/usage", headers=ALICE)).json()
        assert (usage["used_bytes"], usage["file_count"]) == (0, 0)
        listing = (await client.get(f"{base}/list", headers=ALICE)).json()
        assert listing["items"] == []
    leftovers = await anyio.to_thread.run_sync(
        lambda: [p for p in full_volume.rglob("*") if p.is_file()]
    )
    assert leftovers == []
