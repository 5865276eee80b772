from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from app.deps import GrantServiceDep, PrincipalDep
from app.openapi_docs import problem_responses
from app.permissions.models import GranteeType
from app.permissions.schemas import GranteeId, GrantInfo, GrantList, GrantSet

router = APIRouter(prefix="/v1/vfolders/{vfolder_id}/grants", tags=["grants"])


@router.get("", operation_id="grants-list", responses=problem_responses(403, 404, 410))
async def list_grants(
    vfolder_id: UUID, principal: PrincipalDep, service: GrantServiceDep
) -> GrantList:
    """Who the vfolder is shared with (owner, group managers and admins only)."""
    return await service.list_grants(principal, vfolder_id)


@router.put(
    "/{grantee_type}/{grantee_id}",
    operation_id="grants-set",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": GrantInfo, "description": "An existing grant was changed"},
        **problem_responses(403, 404, 410, 503),
    },
)
async def set_grant(
    vfolder_id: UUID,
    grantee_type: GranteeType,
    grantee_id: GranteeId,
    body: GrantSet,
    principal: PrincipalDep,
    service: GrantServiceDep,
    response: Response,
) -> GrantInfo:
    """Share the vfolder with a user or a group, or change their mode."""
    grant, created = await service.set_grant(
        principal, vfolder_id, grantee_type=grantee_type, grantee_id=grantee_id, mode=body.mode
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return grant


@router.delete(
    "/{grantee_type}/{grantee_id}",
    operation_id="grants-revoke",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404, 410, 503),
)
async def revoke_grant(
    vfolder_id: UUID,
    grantee_type: GranteeType,
    grantee_id: GranteeId,
    principal: PrincipalDep,
    service: GrantServiceDep,
) -> None:
    """Revoke a grant; it holds from the very next request, on every node. When the change
    cannot be announced to every node (this node has lost Redis), it is refused with 503
    `/problems/unavailable` and nothing changes: retry after `Retry-After`."""
    await service.revoke_grant(
        principal, vfolder_id, grantee_type=grantee_type, grantee_id=grantee_id
    )
