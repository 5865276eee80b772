"""Reservations held by a node that died: known dead once its lease has run out, they never
refuse a write that fits, and ``reconcile`` releases them at once. A live node's are kept."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import anyio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db.engine import create_engine, create_session_factory
from app.observability.metrics import Metrics
from app.quotas.ledger import QuotaLedger, write_holder
from app.tasks.models import NodeRow, TaskRow
from app.tasks.upkeep import RELEASE_ABANDONED
from tests.files.conftest import ALICE, VFolderHandle
from tests.quotas.test_quotas import set_quota, view

MIB = 1024 * 1024


async def _after_the_start_sweep(sessions: async_sessionmaker[AsyncSession]) -> None:
    """The app's scheduled sweep of abandoned work runs once at start (then every minute):
    past it, only what the test does releases anything."""
    with anyio.fail_after(30):
        while True:
            async with sessions() as session:
                done = await session.scalar(
                    select(TaskRow.id).where(
                        TaskRow.kind == RELEASE_ABANDONED, TaskRow.state == "succeeded"
                    )
                )
            if done is not None:
                return
            await anyio.sleep(0.05)


@asynccontextmanager
async def _node(settings: Settings, *, alive: bool) -> AsyncIterator[QuotaLedger]:
    """The ledger of another node, alive (its lease runs for a minute) or dead (ran out)."""
    engine = create_engine(settings.effective_database_url)
    try:
        sessions = create_session_factory(engine)
        await _after_the_start_sweep(sessions)
        name = f"other-host:{uuid.uuid4().hex[:6]}"
        now = datetime.now(UTC)
        async with sessions() as session, session.begin():
            session.add(
                NodeRow(
                    id=name,
                    started_at=now - timedelta(minutes=5),
                    alive_until=now + timedelta(minutes=1 if alive else -1),
                )
            )
        yield QuotaLedger(sessions, Metrics(), node=name)
    finally:
        await engine.dispose()


async def test_reconcile_releases_a_dead_nodes_reservations_at_once(
    vfolder: VFolderHandle, settings: Settings
) -> None:
    async with _node(settings, alive=False) as dead:
        await dead.reserve(uuid.UUID(vfolder.id), holder=write_holder(), bytes=3 * MIB)
    async with _node(settings, alive=True) as live:
        await live.reserve(uuid.UUID(vfolder.id), holder=write_holder(), bytes=2 * MIB)
    assert (await view(vfolder))["reserved_bytes"] == 5 * MIB

    reconciled = await vfolder.client.post(vfolder.url("reconcile"), headers=ALICE)

    assert reconciled.status_code == 200, reconciled.text
    assert (await view(vfolder))["reserved_bytes"] == 2 * MIB  # the live node's stays


async def test_a_dead_nodes_reservation_never_refuses_a_write_that_fits(
    vfolder: VFolderHandle, settings: Settings
) -> None:
    assert (await set_quota(vfolder.client, "vfolder", vfolder.id, limit_bytes=4 * MIB)).is_success
    async with _node(settings, alive=False) as dead:
        await dead.reserve(uuid.UUID(vfolder.id), holder=write_holder(), bytes=4 * MIB)

    stored = await vfolder.client.put(
        vfolder.url("files/fits.bin"), content=b"x" * (3 * MIB), headers=ALICE
    )

    assert stored.status_code == 201, stored.text
    state = await view(vfolder)
    assert (state["used_bytes"], state["reserved_bytes"]) == (3 * MIB, 0)


async def test_a_live_nodes_reservation_still_counts(
    vfolder: VFolderHandle, settings: Settings
) -> None:
    assert (await set_quota(vfolder.client, "vfolder", vfolder.id, limit_bytes=4 * MIB)).is_success
    async with _node(settings, alive=True) as live:
        await live.reserve(uuid.UUID(vfolder.id), holder=write_holder(), bytes=4 * MIB)

    refused = await vfolder.client.put(
        vfolder.url("files/too-much.bin"), content=b"x" * MIB, headers=ALICE
    )

    assert refused.status_code == 413, refused.text
    assert refused.json()["type"] == "/problems/quota-exceeded"
