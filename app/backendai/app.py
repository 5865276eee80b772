"""The Manager-facing app: Backend.AI's storage-proxy protocol on its own listener, served
from the main app's runtime (set by the main app's lifespan)."""

from __future__ import annotations

from fastapi import FastAPI

from app import __version__
from app.backendai.error_bodies import ManagerErrorBodies
from app.backendai.file_router import router as file_router
from app.backendai.folder_router import router as folder_router
from app.backendai.manager_auth import ManagerAuthMiddleware
from app.backendai.quota_router import router as quota_router
from app.backendai.status_router import router as status_router
from app.backendai.volume_router import router as volume_router
from app.core.fastapi_options import without_native_telemetry
from app.observability.body_limit import BodySizeLimitMiddleware
from app.observability.metrics import Metrics
from app.observability.middleware import RequestContextMiddleware
from app.problems import install_problem_handlers


def create_manager_app(metrics: Metrics) -> FastAPI:
    app = FastAPI(
        title="storage-proxy: Backend.AI Manager-facing API",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        **without_native_telemetry(),
    )
    install_problem_handlers(app)
    app.add_middleware(ManagerAuthMiddleware)
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    # Outermost: it also rewrites the last-resort 500 the request context renders.
    app.add_middleware(ManagerErrorBodies)
    # The routes themselves, not the routers: FastAPI matches an included router through a
    # wrapper that re-derives its routes' version on every request (8 % of GET /volumes).
    # These routers carry no dependencies or settings of their own for an include to merge.
    for router in (status_router, volume_router, folder_router, file_router, quota_router):
        app.router.routes.extend(router.routes)
    return app
