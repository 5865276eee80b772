"""The ledger is exact: after 1,000 random operations — uploads, overwrites, moves, deletes,
mkdirs, uploads refused by the quota, aborted and checksum-failed tus uploads — the usage the
API reports equals a fresh scan of the disk, and no reservation is left behind."""

from __future__ import annotations

import base64
import os
import random
from pathlib import Path

import pytest

from tests.files.conftest import ALICE, VFolderHandle
from tests.support.app import SERVICE

OPERATIONS = 1000
NAMES = [f"{d}/{f}" for d in ("", "a", "a/b", "c") for f in ("x", "y", "z")]
TUS = {**ALICE, "Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}
LIMIT = 200_000


def scan(root: Path) -> tuple[int, int]:
    """What is on disk: bytes of regular files, and entries of every kind."""
    size = entries = 0
    for directory, dirs, files in os.walk(root):
        entries += len(dirs) + len(files)
        for name in files:
            size += (Path(directory) / name).lstat().st_size
    return size, entries


class Operator:
    def __init__(self, vf: VFolderHandle, rng: random.Random) -> None:
        self.vf = vf
        self.rng = rng

    def path(self) -> str:
        return self.rng.choice(NAMES).lstrip("/")

    async def upload(self) -> None:
        data = os.urandom(self.rng.randrange(0, 20_000))
        response = await self.vf.client.put(
            self.vf.url(f"files/{self.path()}"),
            params={"parents": "true"},
            content=data,
            headers=ALICE,
        )
        # Refusals are part of the game: a quota, a file where a directory must go…
        assert response.status_code in {200, 201, 400, 404, 409, 413}, response.text

    async def move(self) -> None:
        response = await self.vf.client.post(
            self.vf.url("move"),
            json={
                "source": self.path(),
                "destination": self.path(),
                "overwrite": self.rng.random() < 0.5,
            },
            headers=ALICE,
        )
        assert response.status_code < 500, response.text

    async def delete(self) -> None:
        target = self.rng.choice([self.path(), "a", "a/b", "c"])
        response = await self.vf.client.post(
            self.vf.url("delete"),
            json={"paths": [target], "recursive": self.rng.random() < 0.5},
            headers=ALICE,
        )
        assert response.status_code == 200, response.text

    async def mkdir(self) -> None:
        response = await self.vf.client.post(
            self.vf.url("mkdir"),
            json={"path": self.rng.choice(["a", "a/b", "c", "d/e"]), "parents": True},
            headers=ALICE,
        )
        assert response.status_code < 500, response.text

    async def aborted_upload(self) -> None:
        """A tus upload that gets some bytes in, then a PATCH with a wrong checksum, then is
        terminated (or left to be terminated with its bytes still staged)."""
        name = base64.b64encode(self.path().encode()).decode()
        created = await self.vf.client.post(
            self.vf.url("uploads"),
            headers={**TUS, "Upload-Length": "5000", "Upload-Metadata": f"path {name}"},
        )
        if created.status_code != 201:
            assert created.status_code in {409, 413}, created.text  # exists, or no room
            return
        url = created.headers["location"]
        await self.vf.client.patch(
            url, content=b"1" * 1000, headers={**TUS, **OCTETS, "Upload-Offset": "0"}
        )
        bad = await self.vf.client.patch(
            url,
            content=b"2" * 1000,
            headers={
                **TUS,
                **OCTETS,
                "Upload-Offset": "1000",
                "Upload-Checksum": "sha1 " + base64.b64encode(b"\0" * 20).decode(),
            },
        )
        assert bad.status_code == 460, bad.text
        if self.rng.random() < 0.7:
            assert (await self.vf.client.delete(url, headers=TUS)).status_code == 204


async def ledger(vf: VFolderHandle) -> tuple[int, int, int]:
    got = await vf.client.get(f"/v1/quotas/vfolder/{vf.id}", headers=SERVICE)
    body = got.json()
    return body["used_bytes"], body["used_files"], body["reserved_bytes"]


@pytest.mark.parametrize("seed", [20261125])
async def test_the_ledger_equals_the_disk_after_random_operations(
    vfolder: VFolderHandle, seed: int
) -> None:
    limited = await vfolder.client.put(
        f"/v1/quotas/vfolder/{vfolder.id}", json={"limit_bytes": LIMIT}, headers=SERVICE
    )
    assert limited.status_code == 200
    rng = random.Random(seed)
    operator = Operator(vfolder, rng)
    actions = [
        (operator.upload, 5),
        (operator.move, 2),
        (operator.delete, 2),
        (operator.mkdir, 1),
        (operator.aborted_upload, 1),
    ]
    for step in range(1, OPERATIONS + 1):
        action = rng.choices([a for a, _ in actions], weights=[w for _, w in actions])[0]
        await action()
        if step % 100 == 0:
            used, files, _reserved = await ledger(vfolder)
            assert (used, files) == scan(vfolder.root), f"seed {seed}, after {step} operations"
            assert used <= LIMIT
    used, files, reserved = await ledger(vfolder)
    assert (used, files) == scan(vfolder.root)
    # Only the unfinished uploads left alive still hold a reservation: exactly their lengths.
    listing = await vfolder.client.get(vfolder.url("uploads"), headers=ALICE)
    assert reserved == sum(u["length"] for u in listing.json()["items"])
