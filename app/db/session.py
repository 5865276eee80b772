"""The request's unit of work: one transaction, committed on success, rolled back on error.
Work that must only happen once the commit is durable (cache invalidation visible to other
nodes, waking background jobs) is queued with ``after_commit``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.observability.logging import get_logger

log = get_logger(__name__)

AfterCommit = Callable[[], Awaitable[None]]
ScheduleAfterCommit = Callable[[AfterCommit], None]
_HOOKS_KEY = "after_commit"


def after_commit(session: AsyncSession, hook: AfterCommit) -> None:
    session.info.setdefault(_HOOKS_KEY, []).append(hook)


async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        hooks: list[AfterCommit] = session.info.pop(_HOOKS_KEY, [])
        for hook in hooks:
            try:
                await hook()
            except Exception:
                # The change is committed; a failed follow-up must not turn it into an error.
                log.exception("after-commit hook failed")
