"""``create_app(settings)``: the whole service. Nothing connects at import time; the lifespan
builds the engine, cache and volumes and tears them down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from app import __version__
from app.auth.tokens import Authenticator
from app.backendai.app import create_manager_app
from app.backendai.client_router import router as backendai_client_router
from app.backendai.listeners import ListenerDispatch
from app.cache import build_cache
from app.config import Settings
from app.core.fastapi_options import without_native_telemetry
from app.core.runtime import Runtime
from app.core.services import tus_service
from app.cors import ProblemCORSMiddleware
from app.db.engine import create_engine, create_session_factory
from app.db.migrate import current_revision, head_revision
from app.db.shutdown import dispose_engine
from app.files.router import router as files_router
from app.health.router import router as health_router
from app.observability.body_limit import BodySizeLimitMiddleware
from app.observability.logging import configure_logging, get_logger
from app.observability.metrics import Metrics
from app.observability.middleware import RequestContextMiddleware
from app.openapi_docs import install_openapi
from app.permissions.access import AccessGate
from app.permissions.router import router as grants_router
from app.problems import install_problem_handlers
from app.quotas.ledger import QuotaLedger
from app.quotas.reconcile import Reconciler
from app.quotas.router import router as quotas_router
from app.snapshots.router import router as snapshots_router
from app.swagger import install_swagger_ui
from app.tasks.nodes import NodeHeartbeat
from app.tasks.router import router as tasks_router
from app.tasks.runner import node_name
from app.tasks.upkeep import build_scheduler, build_task_runner
from app.uploads.expiry import UploadReaper
from app.uploads.locks import build_upload_locks
from app.uploads.protocol import TUS_HEADERS
from app.uploads.router import router as uploads_router
from app.uploads.staging_sweep import StagingSweeper
from app.uploads.tus_middleware import TusMiddleware
from app.vfolders.clone_router import router as clone_router
from app.vfolders.purge import TrashPurger
from app.vfolders.reader import VFolderReader
from app.vfolders.router import router as vfolders_router
from app.volumes.registry import VolumeRegistry
from app.volumes.router import router as volumes_router

log = get_logger(__name__)

TITLE = "storage-proxy"
DESCRIPTION = """One HTTP API over many storage backends: volumes, virtual folders (vfolders),
files and resumable uploads.

Every `/v1` call needs `Authorization: Bearer <service key or user JWT>`. Errors are
[RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) `application/problem+json` bodies whose
`type` is stable."""


# Routes whose bodies stream to disk instead of being buffered: exempt from the 1 MiB cap.
STREAMING_UPLOAD_PATHS = r"^/v1/vfolders/[^/]+/(files/.+|upload|uploads(/[^/]+)?)$|^/upload$"


async def _repair_interrupted_uploads(reaper: UploadReaper) -> None:
    """Before serving: uploads a crashed process renamed into place but never recorded, or
    received in full but never placed."""
    try:
        await reaper.repair_interrupted_completions()
    except Exception:
        log.exception("repairing interrupted uploads failed; the next start tries again")


async def _sweep_staging(sweeper: StagingSweeper) -> None:
    """Before serving: staging files that writers killed in an earlier life left behind."""
    try:
        await sweeper.run_once()
    except Exception:
        log.exception("sweeping the staging areas failed; the next sweep tries again")


class SchemaOutOfDate(RuntimeError):
    pass


def create_app(settings: Settings | None = None, *, setup_logging: bool = False) -> FastAPI:
    settings = settings or Settings()
    settings.check_safe_to_start()
    if setup_logging:
        configure_logging(level=settings.log_level, fmt=settings.log_format)
    volumes = VolumeRegistry.from_config(settings.volumes())
    authenticator = Authenticator.from_settings(settings)
    metrics = Metrics()
    manager_app = create_manager_app(metrics) if settings.manager_api_enabled else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            settings.effective_database_url, pool_size=settings.database_pool_size
        )
        try:
            await _require_current_schema(engine)
            await volumes.initialize()
            cache = build_cache(
                settings.redis_url,
                key_prefix=settings.redis_key_prefix,
                on_availability_change=lambda up: metrics.cache_available.set(1 if up else 0),
                local=settings.local_cache,
            )
            metrics.cache_available.set(1)
            sessions = create_session_factory(engine)
            purger = TrashPurger(
                volumes=volumes,
                sessions=sessions,
                metrics=metrics,
            )
            node = node_name()
            heartbeat = NodeHeartbeat(
                sessions=sessions, node=node, lease_seconds=settings.task_lease_seconds
            )
            await heartbeat.run_once()  # alive before the first reservation it makes
            quota_ledger = QuotaLedger(sessions, metrics, node=node)
            reconciler = Reconciler(
                sessions=sessions, volumes=volumes, ledger=quota_ledger, metrics=metrics
            )
            reaper = UploadReaper(
                sessions=sessions,
                volumes=volumes,
                # Bound late: the tus service needs the runtime, built below.
                place=lambda upload_id: tus_service(app.state.runtime).finish_received(upload_id),
            )
            sweeper = StagingSweeper(
                sessions=sessions,
                volumes=volumes,
                grace_seconds=settings.staging_grace_seconds,
            )
            tasks = build_task_runner(
                settings,
                sessions=sessions,
                volumes=volumes,
                ledger=quota_ledger,
                reconciler=reconciler,
                purger=purger,
                reaper=reaper,
                sweeper=sweeper,
                node=node,
            )
            reader = VFolderReader(cache=cache, ttl_seconds=settings.cache_ttl_seconds)
            scheduler = build_scheduler(settings, sessions=sessions, volumes=volumes, runner=tasks)
            app.state.runtime = Runtime(
                settings=settings,
                engine=engine,
                sessions=sessions,
                cache=cache,
                volumes=volumes,
                metrics=metrics,
                authenticator=authenticator,
                vfolder_reader=reader,
                access_gate=AccessGate(sessions=sessions, reader=reader, volumes=volumes),
                upload_locks=build_upload_locks(
                    sessions, ttl_seconds=settings.upload_lock_ttl_seconds
                ),
                quota_ledger=quota_ledger,
                reconciler=reconciler,
                tasks=tasks,
                scheduler=scheduler,
            )
            if manager_app is not None:
                manager_app.state.runtime = app.state.runtime
            await _repair_interrupted_uploads(reaper)
            await _sweep_staging(sweeper)
            heartbeat.start()
            scheduler.start()
            tasks.start()
            log.info(
                "storage-proxy ready",
                extra={"env": settings.effective_env, "volumes": volumes.names()},
            )
            try:
                yield
            finally:
                await scheduler.stop()
                await tasks.stop()
                await heartbeat.stop()
                await heartbeat.leave()
                await app.state.runtime.upload_locks.close()
                await cache.close()
        finally:
            await volumes.aclose()
            await dispose_engine(engine)
            metrics.process_exiting()

    app = FastAPI(
        title=TITLE,
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        **without_native_telemetry(),
    )
    app.state.manager_app = manager_app
    install_problem_handlers(app)
    # Added last = outermost: the request id and metrics cover every other layer.
    app.add_middleware(TusMiddleware)
    if settings.cors_allow_origins:
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=[*TUS_HEADERS, "ETag", "Content-Range", "X-Request-ID"],
            max_age=600,
        )
    app.add_middleware(BodySizeLimitMiddleware, streaming_paths=STREAMING_UPLOAD_PATHS)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.include_router(health_router)
    app.include_router(volumes_router)
    app.include_router(vfolders_router)
    app.include_router(files_router)
    app.include_router(grants_router)
    app.include_router(uploads_router)
    app.include_router(quotas_router)
    app.include_router(tasks_router)
    app.include_router(clone_router)
    app.include_router(snapshots_router)
    app.include_router(backendai_client_router)
    install_swagger_ui(app, title=TITLE)
    install_openapi(app)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(_request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


async def _require_current_schema(engine: AsyncEngine) -> None:
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"database schema is at {current or 'nothing'}, this version needs {head}: "
            "run `storage-proxy migrate` (or `serve --migrate`)"
        )


def create_app_from_environment() -> FastAPI | ListenerDispatch:
    """Factory for uvicorn (``--factory``), used by ``storage-proxy serve`` workers: the main
    app, and the Manager-facing one beside it when configured."""
    settings = Settings()
    app = create_app(settings, setup_logging=True)
    if app.state.manager_app is None:
        return app
    return ListenerDispatch(app, app.state.manager_app, manager_port=settings.manager_api_port)
