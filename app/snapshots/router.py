"""`/v1/vfolders/{id}/snapshots`: where the volume's driver can take them."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from app.deps import PrincipalDep, SnapshotServiceDep
from app.files.raw_paths import query_value
from app.files.schemas import FileList, file_list_json
from app.openapi_docs import VFOLDER_ACCESS, problem_responses
from app.pagination import MAX_LIMIT
from app.snapshots.schemas import SnapshotCreate, SnapshotList, SnapshotRestore, SnapshotView

router = APIRouter(prefix="/v1/vfolders/{vfolder_id}/snapshots", tags=["snapshots"])

PROBLEMS = (400, 401, *VFOLDER_ACCESS)


@router.get("", operation_id="snapshots-list", responses=problem_responses(*PROBLEMS))
async def list_snapshots(
    vfolder_id: UUID, principal: PrincipalDep, service: SnapshotServiceDep
) -> SnapshotList:
    infos = await service.all(principal, vfolder_id)
    return SnapshotList(items=[SnapshotView.of(i) for i in infos])


@router.post(
    "",
    operation_id="snapshots-create",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(*PROBLEMS),
)
async def create_snapshot(
    vfolder_id: UUID, body: SnapshotCreate, principal: PrincipalDep, service: SnapshotServiceDep
) -> SnapshotView:
    """A read-only, instant snapshot of the whole vfolder."""
    return SnapshotView.of(await service.create(principal, vfolder_id, body.name))


@router.delete(
    "/{name}",
    operation_id="snapshots-delete",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(*PROBLEMS),
)
async def delete_snapshot(
    vfolder_id: UUID, name: str, principal: PrincipalDep, service: SnapshotServiceDep
) -> Response:
    await service.delete(principal, vfolder_id, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{name}/list",
    operation_id="snapshots-browse",
    response_model=FileList,
    responses=problem_responses(*PROBLEMS),
)
async def browse_snapshot(
    vfolder_id: UUID,
    name: str,
    principal: PrincipalDep,
    service: SnapshotServiceDep,
    request: Request,
    path: Annotated[
        str, Query(max_length=8192, description="Relative to the snapshot's root.")
    ] = "",
    cursor: Annotated[str | None, Query(max_length=8192)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = MAX_LIMIT,
) -> Response:
    """A directory of the snapshot, read-only (symlinks listed, never followed), sorted by
    name, one page at a time like the files list."""
    entries, next_cursor = await service.browse(
        principal, vfolder_id, name, query_value(request, "path"), cursor=cursor, limit=limit
    )
    return Response(file_list_json(entries, next_cursor), media_type="application/json")


@router.post(
    "/{name}/restore",
    operation_id="snapshots-restore",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(*PROBLEMS, 413),
)
async def restore_snapshot(
    vfolder_id: UUID,
    name: str,
    body: SnapshotRestore,
    principal: PrincipalDep,
    service: SnapshotServiceDep,
) -> Response:
    """One file back as it was in the snapshot, or the whole vfolder (its current content is
    discarded); the usage ledger follows."""
    await service.restore(principal, vfolder_id, name, body.path)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
