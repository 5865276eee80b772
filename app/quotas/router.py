"""Quotas per scope (`vfolder`, `user`, `group`) and on-demand reconciliation."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from app.deps import PrincipalDep, QuotaServiceDep, ReconcilerDep, RuntimeDep, SessionDep
from app.openapi_docs import VFOLDER_ACCESS, problem_responses
from app.permissions.policy import VFolderOperation
from app.quotas.models import ScopeType
from app.quotas.schemas import QuotaLimits, QuotaList, QuotaView, ReconcileReport
from app.tasks.schemas import TaskView
from app.tasks.service import wake_after_commit

router = APIRouter(tags=["quotas"])

VolumeQuery = Annotated[
    str | None,
    Query(description="The volume of a user or group scope (a vfolder's is its own)."),
]


@router.get(
    "/v1/quotas",
    operation_id="quotas-list",
    responses=problem_responses(401, 403),
)
async def list_quotas(
    principal: PrincipalDep,
    service: QuotaServiceDep,
    over: Annotated[
        float, Query(ge=0, le=1000, description="Only scopes at or above this percentage.")
    ] = 0,
) -> QuotaList:
    """Every scope with a limit (admins), optionally only those over a threshold."""
    return QuotaList(items=await service.over(principal, threshold_percent=over))


@router.get(
    "/v1/quotas/{scope_type}/{scope_id}",
    operation_id="quotas-get",
    responses=problem_responses(400, *VFOLDER_ACCESS),
)
async def get_quota(
    scope_type: ScopeType,
    scope_id: str,
    principal: PrincipalDep,
    service: QuotaServiceDep,
    volume: VolumeQuery = None,
) -> QuotaView:
    """Limit, usage, reservations of writes in progress, free space, alert state."""
    scope = await service.scope(principal, scope_type, scope_id, volume)
    return await service.view(scope)


@router.put(
    "/v1/quotas/{scope_type}/{scope_id}",
    operation_id="quotas-set",
    responses=problem_responses(400, 413, 503, *VFOLDER_ACCESS),
)
async def set_quota(
    scope_type: ScopeType,
    scope_id: str,
    limits: QuotaLimits,
    principal: PrincipalDep,
    service: QuotaServiceDep,
    volume: VolumeQuery = None,
) -> QuotaView:
    """Admins and service keys: any scope. A vfolder's owner: that vfolder, up to the owner's
    own user quota. A limit below the current usage refuses further growth."""
    scope = await service.scope(principal, scope_type, scope_id, volume)
    return await service.set(principal, scope, limits)


@router.delete(
    "/v1/quotas/{scope_type}/{scope_id}",
    operation_id="quotas-unset",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(400, 503, *VFOLDER_ACCESS),
)
async def unset_quota(
    scope_type: ScopeType,
    scope_id: str,
    principal: PrincipalDep,
    service: QuotaServiceDep,
    volume: VolumeQuery = None,
) -> Response:
    scope = await service.scope(principal, scope_type, scope_id, volume)
    await service.unset(principal, scope)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/v1/vfolders/{vfolder_id}/reconcile",
    operation_id="quotas-reconcile-vfolder",
    responses=problem_responses(*VFOLDER_ACCESS),
)
async def reconcile_vfolder(
    vfolder_id: UUID,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    reconciler: ReconcilerDep,
) -> ReconcileReport:
    """Walk the vfolder on disk now (all of it) and correct its usage ledger: whoever may
    write into it (mode `rw` or more, its owner, admins and service keys). Scheduled scans
    do the same every `STORAGE_USAGE_SCAN_INTERVAL_SECONDS`, incrementally."""
    # A short session of its own: the scan takes row locks in its own transactions, which
    # the request's transaction (SQLite: the database's write lock) would block.
    await runtime.access_gate.check(principal, vfolder_id, VFolderOperation.RECONCILE)
    return await reconciler.vfolder(vfolder_id)


@router.post(
    "/v1/volumes/{volume}/reconcile",
    operation_id="quotas-reconcile-volume",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(401, 403, 404),
)
async def reconcile_volume(
    volume: str,
    principal: PrincipalDep,
    service: QuotaServiceDep,
    runtime: RuntimeDep,
    session: SessionDep,
    response: Response,
) -> TaskView:
    """Scan every vfolder of the volume, correct the ledger, report orphans (admins): a task
    (`Location`), whose result is the report. While one runs, asking again returns it."""
    task = await service.scan_volume(principal, volume)
    wake_after_commit(session, runtime.tasks)
    response.headers["Location"] = f"/v1/tasks/{task.id}"
    return TaskView.of(task)
