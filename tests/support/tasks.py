"""Waiting for a task started through the API."""

from __future__ import annotations

from typing import Any

import anyio
import httpx

FINAL_STATES = {"succeeded", "failed", "cancelled"}


async def finished_task(
    client: httpx.AsyncClient, location: str, headers: dict[str, str], *, within: float = 60
) -> dict[str, Any]:
    """The task at ``location`` once it has ended (polled: a task is another node's work)."""
    with anyio.fail_after(within):
        while True:
            task: dict[str, Any] = (await client.get(location, headers=headers)).json()
            if task["state"] in FINAL_STATES:
                return task
            await anyio.sleep(0.05)
