"""Trying to store more than a quota allows, as a hostile user would: every trick must end in a
refusal, with the ledger and the disk within the limit."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest

from app.config import Settings
from app.db.engine import create_engine, create_session_factory
from app.quotas.ledger import upload_holder
from app.quotas.repository import QuotaRepository
from tests.files.conftest import ALICE, VFolderHandle
from tests.quotas.test_quotas import OCTETS, TUS, set_quota, view

KIB = 1024
LIMIT = 64 * KIB


async def _partial(vf: VFolderHandle, data: bytes) -> str:
    created = await vf.client.post(
        vf.url("uploads"),
        headers={**ALICE, **TUS, "Upload-Concat": "partial", "Upload-Length": str(len(data))},
    )
    assert created.status_code == 201, created.text
    url = str(created.headers["location"])
    patched = await vf.client.patch(
        url, headers={**ALICE, **TUS, **OCTETS, "Upload-Offset": "0"}, content=data
    )
    assert patched.status_code == 204, patched.text
    return url


async def _final(vf: VFolderHandle, *parts: str, path: str = "joined.bin") -> httpx.Response:
    name = base64.b64encode(path.encode()).decode()
    return await vf.client.post(
        vf.url("uploads"),
        headers={
            **ALICE,
            **TUS,
            "Upload-Concat": "final;" + " ".join(parts),
            "Upload-Metadata": f"path {name}",
        },
    )


def _stored_bytes(vf: VFolderHandle) -> int:
    return sum(p.stat().st_size for p in vf.root.rglob("*") if p.is_file())


@pytest.mark.parametrize("scope", ["vfolder", "user"])
async def test_a_concatenation_listing_one_part_twice_stores_nothing(
    vfolder: VFolderHandle, scope: str
) -> None:
    """The attack: one partial upload of the whole limit, joined as ``final;P P``. It stored
    twice the limit (its reservation was counted once, its bytes twice)."""
    scope_id = vfolder.id if scope == "vfolder" else "alice"
    assert (await set_quota(vfolder.client, scope, scope_id, limit_bytes=LIMIT)).status_code == 200
    part = await _partial(vfolder, b"p" * LIMIT)

    twice = await _final(vfolder, part, part)

    assert twice.status_code == 400, twice.text
    assert twice.headers["content-type"].startswith("application/problem+json")
    assert twice.json()["type"] == "/problems/upload-concat-repeated-part"
    assert _stored_bytes(vfolder) == 0
    state = await view(vfolder, scope, scope_id)
    assert state["used_bytes"] == 0
    # The part is still usable, once.
    once = await _final(vfolder, part)
    assert once.status_code == 201, once.text
    assert await vfolder.usage() == (LIMIT, 1)


async def test_the_same_part_under_two_spellings_is_the_same_part(vfolder: VFolderHandle) -> None:
    assert (await set_quota(vfolder.client, "vfolder", vfolder.id, limit_bytes=LIMIT)).is_success
    part = await _partial(vfolder, b"p" * (LIMIT // 2))
    spelled_twice = await _final(vfolder, part, f"http://proxy{part}")
    assert spelled_twice.status_code == 400
    assert spelled_twice.json()["type"] == "/problems/upload-concat-repeated-part"
    assert _stored_bytes(vfolder) == 0


async def test_a_write_is_checked_whole_when_it_commits_whatever_it_had_reserved(
    vfolder: VFolderHandle, settings: Settings
) -> None:
    """Two parts of half the limit each; one's reservation is gone (released with a dead
    node, as an operator's ``reconcile`` would), and a PUT takes the room it held. Joining
    the parts now would store 1.5 x the limit: the commit compares the whole joined file
    with what is used and reserved by others, and refuses it."""
    assert (await set_quota(vfolder.client, "user", "alice", limit_bytes=LIMIT)).is_success
    first = await _partial(vfolder, b"a" * (LIMIT // 2))
    second = await _partial(vfolder, b"b" * (LIMIT // 2))
    engine = create_engine(settings.effective_database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            upload_id = uuid.UUID(second.rsplit("/", 1)[1])
            assert await QuotaRepository(session).drop_reservation(upload_holder(upload_id))
    finally:
        await engine.dispose()
    filler = await vfolder.client.put(
        vfolder.url("files/filler.bin"), content=b"f" * (LIMIT // 2), headers=ALICE
    )
    assert filler.status_code == 201, filler.text

    joined = await _final(vfolder, first, second)

    assert joined.status_code == 413, joined.text
    assert joined.json()["type"] == "/problems/quota-exceeded"
    assert not (vfolder.root / "joined.bin").exists()
    assert await vfolder.usage() == (LIMIT // 2, 1)
    assert _stored_bytes(vfolder) <= LIMIT
