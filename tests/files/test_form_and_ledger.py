"""Browser form uploads, and the usage ledger against a scan of the disk."""

from __future__ import annotations

import random
import uuid

import pytest

from drivers.fsops import PosixFileOpsSync
from drivers.layout import VolumeLayout
from tests.files.conftest import ALICE, VFolderHandle


async def test_form_upload_of_several_files(vfolder: VFolderHandle) -> None:
    files = [
        ("files", ("a.txt", b"alpha", "text/plain")),
        ("files", ("nested/b.bin", b"\x00" * 3000, "application/octet-stream")),
        ("note", (None, b"a plain field, ignored")),
        ("files", ("", b"", "application/octet-stream")),  # an empty file input
    ]
    response = await vfolder.client.post(
        vfolder.url("upload"),
        params={"dir": "in", "parents": "true"},
        files=files,  # type: ignore[arg-type]
        headers=ALICE,
    )
    assert response.status_code == 201, response.text
    assert [(f["path"], f["size"]) for f in response.json()["items"]] == [
        ("in/a.txt", 5),
        ("in/nested/b.bin", 3000),
    ]
    assert (vfolder.root / "in" / "a.txt").read_bytes() == b"alpha"
    assert (vfolder.root / "in" / "nested" / "b.bin").read_bytes() == b"\x00" * 3000
    assert await vfolder.usage() == (3005, 4)

    again = await vfolder.client.post(
        vfolder.url("upload"),
        params={"dir": "in"},
        files=[("files", ("a.txt", b"alpha", "text/plain"))],
        headers=ALICE,
    )
    assert again.status_code == 409
    replaced = await vfolder.client.post(
        vfolder.url("upload"),
        params={"dir": "in", "overwrite": "true"},
        files=[("f", ("a.txt", b"A", "text/plain"))],
        headers=ALICE,
    )
    assert replaced.status_code == 201 and replaced.json()["items"][0]["created"] is False
    assert await vfolder.usage() == (3001, 4)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b"x"),
        ("multipart/form-data", b"x"),
        ("multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form-data; name="),
    ],
)
async def test_bad_forms_are_400(vfolder: VFolderHandle, content_type: str, body: bytes) -> None:
    response = await vfolder.client.post(
        vfolder.url("upload"), content=body, headers={**ALICE, "content-type": content_type}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert list((vfolder.root.parents[2] / ".staging").iterdir()) == []


async def test_form_filename_cannot_escape(vfolder: VFolderHandle) -> None:
    response = await vfolder.client.post(
        vfolder.url("upload"),
        files=[("f", ("../../evil", b"x", "text/plain"))],
        headers=ALICE,
    )
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/unsafe-path"


async def test_ledger_equals_a_disk_scan_after_random_operations(
    vfolder: VFolderHandle,
) -> None:
    rng = random.Random(20261125)
    names = [f"d{i}/f{j}" for i in range(3) for j in range(4)] + [f"f{j}" for j in range(4)]
    dirs = ["d0", "d1", "d2", "d1/sub"]
    c = vfolder.client
    for _ in range(250):
        op = rng.choice(["put", "put", "put", "mkdir", "move", "delete", "delete-dir"])
        if op == "put":
            await c.put(
                vfolder.url(f"files/{rng.choice(names)}"),
                params={"parents": "true"},
                content=b"x" * rng.randrange(0, 5000),
                headers=ALICE,
            )
        elif op == "mkdir":
            await c.post(
                vfolder.url("mkdir"),
                json={"path": rng.choice(dirs), "parents": True, "exist_ok": True},
                headers=ALICE,
            )
        elif op == "move":
            await c.post(
                vfolder.url("move"),
                json={
                    "source": rng.choice(names + dirs),
                    "destination": rng.choice(names + dirs),
                    "overwrite": rng.random() < 0.5,
                },
                headers=ALICE,
            )
        elif op == "delete":
            await c.post(vfolder.url("delete"), json={"paths": [rng.choice(names)]}, headers=ALICE)
        else:
            await c.post(
                vfolder.url("delete"),
                json={"paths": [rng.choice(dirs)], "recursive": True},
                headers=ALICE,
            )
    scan = PosixFileOpsSync(VolumeLayout(vfolder.root.parents[2])).usage(uuid.UUID(vfolder.id))
    assert await vfolder.usage() == (scan.bytes, scan.entries)
