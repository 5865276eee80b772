"""Every dependency, named once as an ``Annotated`` alias; routes read like a list of needs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.backendai.client_tokens import ClientTokens
from app.backendai.files import BackendAIFiles
from app.backendai.folders import BackendAIFolders
from app.backendai.transfers import ClientTransfers
from app.backendai.volumes import BackendAIVolumes
from app.core import services
from app.core.runtime import Runtime
from app.db.session import unit_of_work
from app.errors import TransferTokenMisused, Unauthenticated
from app.files.service import FilesService
from app.health.service import HealthService
from app.observability.context import bind_log_fields
from app.permissions.service import GrantService
from app.quotas.reconcile import Reconciler
from app.quotas.service import QuotaService
from app.snapshots.service import SnapshotService
from app.tasks.service import TaskService
from app.uploads.service import TusService
from app.vfolders.service import VFolderService
from app.vfolders.usage import UsageReader
from app.volumes.service import VolumeService


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async for session in unit_of_work(runtime.sessions):
        yield session


# scope="function": commit (or roll back) before the response is sent, so a client never sees
# success for a change that then failed to commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

# A service key (the Manager) acts for a user by naming them; ignored for any other caller.
ACT_AS_USER_HEADER = "X-Act-As-User"
ACT_AS_GROUPS_HEADER = "X-Act-As-Groups"  # comma-separated group ids

# Declares the scheme in OpenAPI (Swagger UI's Authorize button); the check itself reads the
# raw header so that every failure gets the same problem response.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A service key or a user JWT (`storage-proxy token --user ID`).",
)


async def get_any_principal(
    request: Request,
    runtime: RuntimeDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Principal:
    """The caller, from the Authorization header, or else a transfer token in ``?token=``
    (a link that works in a plain browser tab)."""
    authorization = request.headers.get("authorization")
    from_query = not authorization and "token" in request.query_params
    if from_query:
        authorization = f"Bearer {request.query_params['token']}"
    principal = runtime.authenticator.authenticate(
        authorization,
        act_as_user=None if from_query else request.headers.get(ACT_AS_USER_HEADER),
        act_as_groups=None if from_query else request.headers.get(ACT_AS_GROUPS_HEADER),
    )
    if from_query and principal.transfer is None:
        # URLs end up in logs and Referer headers: only a short-lived, narrow token may ride
        # in one.
        raise Unauthenticated("only transfer tokens may be passed as ?token=")
    bind_log_fields(principal=f"{principal.kind.value}:{principal.id}")
    if principal.transfer is not None:
        bind_log_fields(transfer_jti=principal.transfer.jti)
    return principal


async def get_principal(principal: Annotated[Principal, Depends(get_any_principal)]) -> Principal:
    """Any caller but a transfer token, which only downloads or uploads files."""
    if principal.transfer is not None:
        raise TransferTokenMisused("a transfer token only downloads or uploads files")
    return principal


# Routes that take transfer tokens (file download and upload) check their scope themselves.
TransferablePrincipalDep = Annotated[Principal, Depends(get_any_principal)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_volume_service(runtime: RuntimeDep) -> VolumeService:
    return VolumeService(runtime.volumes)


VolumeServiceDep = Annotated[VolumeService, Depends(get_volume_service)]


async def get_vfolder_service(runtime: RuntimeDep, session: SessionDep) -> VFolderService:
    return services.vfolder_service(runtime, session)


VFolderServiceDep = Annotated[VFolderService, Depends(get_vfolder_service)]


async def get_usage_reader(runtime: RuntimeDep, session: SessionDep) -> UsageReader:
    return services.usage_reader(runtime, session)


UsageReaderDep = Annotated[UsageReader, Depends(get_usage_reader)]


async def get_files_service(runtime: RuntimeDep) -> FilesService:
    return services.files_service(runtime)


FilesServiceDep = Annotated[FilesService, Depends(get_files_service)]


async def get_tus_service(runtime: RuntimeDep) -> TusService:
    return services.tus_service(runtime)


TusServiceDep = Annotated[TusService, Depends(get_tus_service)]


async def get_snapshot_service(runtime: RuntimeDep) -> SnapshotService:
    return services.snapshot_service(runtime)


SnapshotServiceDep = Annotated[SnapshotService, Depends(get_snapshot_service)]


async def get_quota_service(runtime: RuntimeDep, session: SessionDep) -> QuotaService:
    return services.quota_service(runtime, session)


QuotaServiceDep = Annotated[QuotaService, Depends(get_quota_service)]


async def get_reconciler(runtime: RuntimeDep) -> Reconciler:
    return runtime.reconciler


ReconcilerDep = Annotated[Reconciler, Depends(get_reconciler)]


async def get_grant_service(runtime: RuntimeDep, session: SessionDep) -> GrantService:
    return services.grant_service(runtime, session)


GrantServiceDep = Annotated[GrantService, Depends(get_grant_service)]


async def get_task_service(session: SessionDep) -> TaskService:
    return TaskService(session)


TaskServiceDep = Annotated[TaskService, Depends(get_task_service)]


async def get_health_service(runtime: RuntimeDep) -> HealthService:
    return HealthService(runtime)


HealthServiceDep = Annotated[HealthService, Depends(get_health_service)]


# -- the Backend.AI layer ---------------------------------------------------------------------
# The Manager's calls are the cheapest and most frequent: each service comes straight from the
# request rather than through ``RuntimeDep``, one dependency to solve instead of two.


async def get_backendai_volumes(request: Request) -> BackendAIVolumes:
    return BackendAIVolumes(runtime_of(request).volumes)


BackendAIVolumesDep = Annotated[BackendAIVolumes, Depends(get_backendai_volumes)]


async def get_backendai_folders(request: Request) -> BackendAIFolders:
    return BackendAIFolders(runtime_of(request))


BackendAIFoldersDep = Annotated[BackendAIFolders, Depends(get_backendai_folders)]


async def get_backendai_files(request: Request) -> BackendAIFiles:
    runtime = runtime_of(request)
    return BackendAIFiles(
        sessions=runtime.sessions,
        reader=runtime.vfolder_reader,
        files=services.files_service(runtime),
        tus=services.tus_service(runtime),
        tokens=ClientTokens.from_settings(runtime.settings),
    )


BackendAIFilesDep = Annotated[BackendAIFiles, Depends(get_backendai_files)]


async def get_client_transfers(runtime: RuntimeDep) -> ClientTransfers:
    return ClientTransfers(
        sessions=runtime.sessions,
        reader=runtime.vfolder_reader,
        files=services.files_service(runtime),
        tus=services.tus_service(runtime),
        tokens=ClientTokens.from_settings(runtime.settings),
    )


ClientTransfersDep = Annotated[ClientTransfers, Depends(get_client_transfers)]
