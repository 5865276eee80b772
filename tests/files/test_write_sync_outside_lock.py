"""A write's directory fsync comes after its transaction: another write to the same vfolder
commits while the first one is still syncing, and each is answered only once durable."""

from __future__ import annotations

import anyio
import pytest

from drivers.fsops import PosixFileOps
from drivers.paths import RelativePath
from tests.files.conftest import ALICE, VFolderHandle


async def test_another_write_commits_while_the_first_syncs_its_directory(
    vfolder: VFolderHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sync = PosixFileOps.sync_entry
    synced: list[str] = []
    during_sync: list[int] = []

    async def sync_entry(self: PosixFileOps, vfolder_id: object, path: RelativePath) -> None:
        if str(path) == "first.bin":
            # Still inside the first PUT. Were its row lock (or SQLite's one writer) held,
            # this second write would wait for it: the pool's 15 s, then a 503.
            with anyio.fail_after(5):
                second = await vfolder.client.put(
                    vfolder.url("files/second.bin"), content=b"22", headers=ALICE
                )
            during_sync.append(second.status_code)
        await real_sync(self, vfolder_id, path)  # type: ignore[arg-type]
        synced.append(str(path))

    monkeypatch.setattr(PosixFileOps, "sync_entry", sync_entry)
    first = await vfolder.client.put(vfolder.url("files/first.bin"), content=b"1", headers=ALICE)
    assert first.status_code == 201 and during_sync == [201]
    assert synced == ["second.bin", "first.bin"]
    assert (vfolder.root / "first.bin").read_bytes() == b"1"
    assert (vfolder.root / "second.bin").read_bytes() == b"22"
    assert await vfolder.usage() == (3, 2)
