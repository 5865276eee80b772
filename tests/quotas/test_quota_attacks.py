"""Trying to store more than a quota allows, as a hostile user would: every trick must end in a
refusal, with the ledger and the disk within the limit."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

import httpx
import pytest

from app.config import Settings
from app.db.engine import create_engine, create_session_factory
from app.quotas.ledger import upload_holder
from app.quotas.repository import QuotaRepository
from tests.files.conftest import ALICE, VFolderHandle
from tests.quotas.test_quotas import OCTETS, TUS, set_quota, view
from tests.support.app import SERVICE, bearer, user_token

KIB = 1024
LIMIT = 64 * KIB
LAB_MEMBER = bearer(user_token("alice", "lab"))


@dataclass
class Target:
    """A vfolder whose quota scope is under attack, and the attacker's headers."""

    vf: VFolderHandle
    headers: dict[str, str]
    scope: str
    scope_id: str


@pytest.fixture(params=["vfolder", "user", "group"])
async def target(
    request: pytest.FixtureRequest, vfolder: VFolderHandle, settings: Settings
) -> Target:
    scope: str = request.param
    if scope != "group":
        return Target(vfolder, ALICE, scope, vfolder.id if scope == "vfolder" else "alice")
    created = await vfolder.client.post(
        "/v1/vfolders",
        json={"name": "lab-data", "volume": "local", "owner_type": "group", "owner_id": "lab"},
        headers=SERVICE,
    )
    assert created.status_code == 201, created.text
    vfolder_id = created.json()["id"]
    hex_id = vfolder_id.replace("-", "")
    root = settings.data_dir / "volumes" / "local" / hex_id[:2] / hex_id[2:4] / hex_id
    handle = VFolderHandle(vfolder.client, vfolder_id, root, f"/v1/vfolders/{vfolder_id}")
    return Target(handle, LAB_MEMBER, scope, "lab")


async def _limit(target: Target, limit_bytes: int) -> None:
    limited = await set_quota(
        target.vf.client, target.scope, target.scope_id, limit_bytes=limit_bytes
    )
    assert limited.status_code == 200, limited.text


async def _partial(target: Target, data: bytes) -> str:
    vf, headers = target.vf, target.headers
    created = await vf.client.post(
        vf.url("uploads"),
        headers={**headers, **TUS, "Upload-Concat": "partial", "Upload-Length": str(len(data))},
    )
    assert created.status_code == 201, created.text
    url = str(created.headers["location"])
    patched = await vf.client.patch(
        url, headers={**headers, **TUS, **OCTETS, "Upload-Offset": "0"}, content=data
    )
    assert patched.status_code == 204, patched.text
    return url


async def _final(target: Target, *parts: str, path: str = "joined.bin") -> httpx.Response:
    name = base64.b64encode(path.encode()).decode()
    return await target.vf.client.post(
        target.vf.url("uploads"),
        headers={
            **target.headers,
            **TUS,
            "Upload-Concat": "final;" + " ".join(parts),
            "Upload-Metadata": f"path {name}",
        },
    )


def _stored_bytes(vf: VFolderHandle) -> int:
    return sum(p.stat().st_size for p in vf.root.rglob("*") if p.is_file())


async def test_a_concatenation_listing_one_part_twice_stores_nothing(target: Target) -> None:
    """The attack: one partial upload of the whole limit, joined as ``final;P P``. It stored
    twice the limit (its reservation was counted once, its bytes twice)."""
    await _limit(target, LIMIT)
    part = await _partial(target, b"p" * LIMIT)

    twice = await _final(target, part, part)

    assert twice.status_code == 400, twice.text
    assert twice.headers["content-type"].startswith("application/problem+json")
    assert twice.json()["type"] == "/problems/upload-concat-repeated-part"
    assert _stored_bytes(target.vf) == 0
    assert (await view(target.vf, target.scope, target.scope_id))["used_bytes"] == 0
    # The part is still usable, once.
    once = await _final(target, part)
    assert once.status_code == 201, once.text
    assert await target.vf.usage() == (LIMIT, 1)


async def test_the_same_part_under_two_spellings_is_the_same_part(vfolder: VFolderHandle) -> None:
    target = Target(vfolder, ALICE, "vfolder", vfolder.id)
    await _limit(target, LIMIT)
    part = await _partial(target, b"p" * (LIMIT // 2))
    spelled_twice = await _final(target, part, f"http://proxy{part}")
    assert spelled_twice.status_code == 400
    assert spelled_twice.json()["type"] == "/problems/upload-concat-repeated-part"
    assert _stored_bytes(vfolder) == 0


async def test_a_write_is_checked_whole_when_it_commits_whatever_it_had_reserved(
    target: Target, settings: Settings
) -> None:
    """Two parts of half the limit each; one's reservation is gone (released with a dead
    node, as ``reconcile`` does), and a PUT takes the room it held. Joining the parts now
    would store 1.5 x the limit: the commit compares the whole joined file with what is used
    and reserved by others, in every scope, and refuses it."""
    await _limit(target, LIMIT)
    first = await _partial(target, b"a" * (LIMIT // 2))
    second = await _partial(target, b"b" * (LIMIT // 2))
    engine = create_engine(settings.effective_database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            upload_id = uuid.UUID(second.rsplit("/", 1)[1])
            assert await QuotaRepository(session).drop_reservation(upload_holder(upload_id))
    finally:
        await engine.dispose()
    filler = await target.vf.client.put(
        target.vf.url("files/filler.bin"), content=b"f" * (LIMIT // 2), headers=target.headers
    )
    assert filler.status_code == 201, filler.text

    joined = await _final(target, first, second)

    assert joined.status_code == 413, joined.text
    assert joined.json()["type"] == "/problems/quota-exceeded"
    assert joined.json()["scope_type"] == target.scope
    assert not (target.vf.root / "joined.bin").exists()
    assert await target.vf.usage() == (LIMIT // 2, 1)
    assert _stored_bytes(target.vf) <= LIMIT
