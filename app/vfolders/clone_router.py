"""`POST /v1/vfolders/{id}/clone`: a new vfolder with the same content, copied by a task."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from app.deps import PrincipalDep, RuntimeDep, SessionDep
from app.openapi_docs import VFOLDER_ACCESS, problem_responses
from app.tasks.schemas import TaskView
from app.tasks.service import wake_after_commit
from app.vfolders.clone import start_clone
from app.vfolders.schemas import VFolderCreate, VFolderView
from app.vfolders.service import as_seen_by

router = APIRouter(tags=["vfolders"])


class CloneStarted(BaseModel):
    vfolder: VFolderView
    task: TaskView


@router.post(
    "/v1/vfolders/{vfolder_id}/clone",
    operation_id="vfolders-clone",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(400, 413, *VFOLDER_ACCESS),
)
async def clone_vfolder(
    vfolder_id: UUID,
    request: VFolderCreate,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    session: SessionDep,
    response: Response,
) -> CloneStarted:
    """The new vfolder (named, owned and placed like a create; any volume of this proxy) is
    `cloning` until its task has copied everything, then `ready`. Its quota is reserved for
    the source's size first. Follow the task at `Location` (or its `/events`)."""
    target, task = await start_clone(
        session,
        principal,
        vfolder_id,
        request,
        gate=runtime.access_gate,
        volumes=runtime.volumes,
        ledger=runtime.quota_ledger,
    )
    wake_after_commit(session, runtime.tasks)
    response.headers["Location"] = f"/v1/tasks/{task.id}"
    # The caller's real mode on the clone (a group member's is the group mode), like a create.
    return CloneStarted(
        vfolder=await as_seen_by(session, principal, target), task=TaskView.of(task)
    )
