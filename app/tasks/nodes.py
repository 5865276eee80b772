"""This node's liveness, as a lease in the database: registered before the node serves,
renewed every third of the lease (the task lease's length), dropped on a clean stop. A node
whose lease ran out is dead to every other node: what it held is released (see
``app/quotas/ledger.py``). A restarted process has a new name, so its previous life's lease
simply runs out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.observability.logging import get_logger
from app.tasks.periodic import PeriodicJob
from app.tasks.repository import NodeRepository

log = get_logger(__name__)

# Rows of nodes dead this long are removed (nothing refers to them any more).
FORGET_DEAD_AFTER = timedelta(days=1)


class NodeHeartbeat(PeriodicJob):
    name = "node-heartbeat"

    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], node: str, lease_seconds: float
    ) -> None:
        super().__init__(interval_seconds=lease_seconds / 3)
        self._sessions = sessions
        self.node = node
        self._lease = timedelta(seconds=lease_seconds)

    async def run_once(self) -> int:
        """Renews (or registers) this node's lease; forgets nodes long dead."""
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            nodes = NodeRepository(session)
            await nodes.renew(self.node, now=now, until=now + self._lease)
            await nodes.forget_dead_before(now - FORGET_DEAD_AFTER)
        return 1

    async def leave(self) -> None:
        """A clean stop: this node is dead to the others at once (or, if the database cannot
        be reached now, once its lease runs out)."""
        try:
            async with self._sessions() as session, session.begin():
                await NodeRepository(session).remove(self.node)
        except Exception:
            log.warning("could not deregister node %s; its lease will run out", self.node)
