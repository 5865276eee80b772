from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from app.deps import PrincipalDep, UsageReaderDep, VFolderServiceDep
from app.openapi_docs import VFOLDER_ACCESS, problem_responses
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.permissions.models import Mode
from app.vfolders.models import OwnerType, VFolderStatus
from app.vfolders.repository import VFolderFilter
from app.vfolders.schemas import (
    VFolderCreate,
    VFolderList,
    VFolderMount,
    VFolderUpdate,
    VFolderUsage,
    VFolderView,
    VolumeName,
)

router = APIRouter(prefix="/v1/vfolders", tags=["vfolders"])


@router.post(
    "",
    operation_id="vfolders-create",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": VFolderView, "description": "Replay of an earlier create with the same id"},
        **problem_responses(400, 403, 404, 409, 503),
    },
)
async def create_vfolder(
    body: VFolderCreate,
    principal: PrincipalDep,
    service: VFolderServiceDep,
    response: Response,
) -> VFolderView:
    """Create a vfolder on a volume. Idempotent when the caller supplies the id."""
    vfolder, created = await service.create(principal, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/vfolders/{vfolder.id}"
    return vfolder


@router.get("", operation_id="vfolders-list", responses=problem_responses(400))
async def list_vfolders(
    principal: PrincipalDep,
    service: VFolderServiceDep,
    volume: Annotated[VolumeName | None, Query()] = None,
    owner_type: Annotated[OwnerType | None, Query()] = None,
    owner_id: Annotated[str | None, Query(max_length=255)] = None,
    name: Annotated[str | None, Query(max_length=255)] = None,
    status_: Annotated[
        VFolderStatus | None,
        Query(alias="status", description="Defaults to `ready`; `deleted` lists deletions."),
    ] = VFolderStatus.READY,
    mode: Annotated[
        Mode | None, Query(description="Only vfolders where your mode is at least this.")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> VFolderList:
    """List the vfolders the caller may see, ordered by name, one page at a time."""
    where = VFolderFilter(
        volume=volume,
        owner_type=owner_type,
        owner_id=owner_id,
        name=name,
        status=status_,
        mode=mode,
    )
    return await service.list(principal, where=where, cursor=cursor, limit=limit)


@router.get("/{vfolder_id}", operation_id="vfolders-get", responses=problem_responses(404))
async def get_vfolder(
    vfolder_id: UUID, principal: PrincipalDep, service: VFolderServiceDep
) -> VFolderView:
    """One vfolder, including deleted ones (status `deleted`)."""
    return await service.get(principal, vfolder_id)


@router.patch(
    "/{vfolder_id}",
    operation_id="vfolders-update",
    responses=problem_responses(503, *VFOLDER_ACCESS),
)
async def update_vfolder(
    vfolder_id: UUID,
    body: VFolderUpdate,
    principal: PrincipalDep,
    service: VFolderServiceDep,
) -> VFolderView:
    """Rename a vfolder, or change what members of its owning group may do."""
    return await service.update(principal, vfolder_id, body)


@router.delete(
    "/{vfolder_id}",
    operation_id="vfolders-delete",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404, 503),
)
async def delete_vfolder(
    vfolder_id: UUID, principal: PrincipalDep, service: VFolderServiceDep
) -> None:
    """Delete a vfolder: its name is free at once, its files are purged in the background."""
    await service.delete(principal, vfolder_id)


@router.get(
    "/{vfolder_id}/mount",
    operation_id="vfolders-mount-info",
    responses=problem_responses(*VFOLDER_ACCESS),
)
async def get_mount_info(
    vfolder_id: UUID, principal: PrincipalDep, service: VFolderServiceDep
) -> VFolderMount:
    """Where an Agent finds the vfolder to mount it into a container."""
    return await service.mount_info(principal, vfolder_id)


@router.get("/{vfolder_id}/usage", operation_id="vfolders-usage", responses=problem_responses(404))
async def get_usage(
    vfolder_id: UUID,
    principal: PrincipalDep,
    reader: UsageReaderDep,
) -> VFolderUsage:
    """Bytes and entries in the vfolder, where the figure comes from (`source`: `native`,
    `scan` or `ledger`) and as of when (`as_of`)."""
    return await reader.usage(principal, vfolder_id)
