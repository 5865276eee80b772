"""`/v1/tasks`: long operations, their progress, and a live feed of it (Server-Sent Events)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

import anyio
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from app.core.runtime import Runtime
from app.deps import PrincipalDep, RuntimeDep, TaskServiceDep
from app.openapi_docs import problem_responses
from app.tasks.models import TaskState
from app.tasks.repository import TaskRepository
from app.tasks.schemas import TaskList, TaskView

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

EVENTS_POLL_SECONDS = 0.25
KEEPALIVE_SECONDS = 15.0


def _event_schema(name: str, data: dict[str, object]) -> dict[str, object]:
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "id": {"type": "string"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": data,
            },
        },
    }


# One event of the stream (its fields, `data` being JSON text), the way OpenAPI 3.2's
# `itemSchema` describes an event and tools reading 3.1 take the `schema` of an event stream.
TASK_EVENT_SCHEMA = {
    "oneOf": [
        _event_schema("progress", {"$ref": "#/components/schemas/TaskView"}),
        _event_schema(
            "end",
            {
                "type": "object",
                "required": ["id", "state"],
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "state": {"$ref": "#/components/schemas/TaskState"},
                },
            },
        ),
    ]
}


@router.get("", operation_id="tasks-list", responses=problem_responses(401))
async def list_tasks(
    principal: PrincipalDep,
    service: TaskServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TaskList:
    """Your tasks, newest first."""
    return TaskList(items=[TaskView.of(row) for row in await service.mine(principal, limit=limit)])


@router.get("/{task_id}", operation_id="tasks-get", responses=problem_responses(401, 404))
async def get_task(task_id: UUID, principal: PrincipalDep, service: TaskServiceDep) -> TaskView:
    return TaskView.of(await service.get(principal, task_id))


@router.post(
    "/{task_id}/cancel", operation_id="tasks-cancel", responses=problem_responses(401, 404)
)
async def cancel_task(task_id: UUID, principal: PrincipalDep, service: TaskServiceDep) -> TaskView:
    """A queued task is cancelled at once; a running one stops within a lease renewal."""
    return TaskView.of(await service.cancel(principal, task_id))


@router.get(
    "/{task_id}/events",
    operation_id="tasks-events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": TASK_EVENT_SCHEMA}},
            "description": "`progress` events (a TaskView each, in order), then one `end`.",
        },
        **problem_responses(401, 404),
    },
)
async def task_events(
    task_id: UUID, principal: PrincipalDep, service: TaskServiceDep, runtime: RuntimeDep
) -> StreamingResponse:
    """Server-Sent Events: a `progress` event whenever the state or progress changes, and a
    final `end` event with the final state."""
    await service.get(principal, task_id)  # 404 now, rather than a broken stream
    return StreamingResponse(
        _events(runtime, task_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(runtime: Runtime, task_id: UUID) -> AsyncIterator[str]:
    last: tuple[str, int, int | None] | None = None
    sequence = 0
    quiet_since = anyio.current_time()
    while True:
        async with runtime.sessions() as session:
            row = await TaskRepository(session).get(task_id)
        if row is None:
            return
        view = TaskView.of(row)
        seen = (row.state, row.progress_current, row.progress_total)
        if seen != last:
            last = seen
            sequence += 1
            yield f"id: {sequence}\nevent: progress\ndata: {view.model_dump_json()}\n\n"
            quiet_since = anyio.current_time()
        if TaskState(row.state).final:
            sequence += 1
            end = json.dumps({"id": str(task_id), "state": row.state})
            yield f"id: {sequence}\nevent: end\ndata: {end}\n\n"
            return
        if anyio.current_time() - quiet_since > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            quiet_since = anyio.current_time()
        await anyio.sleep(EVENTS_POLL_SECONDS)
