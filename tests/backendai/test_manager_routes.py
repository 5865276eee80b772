"""The Manager's app holds its routes directly: an included router is matched through a
wrapper that costs on every request, and these routers have nothing for an include to merge
(a dependency, a default response class, callbacks) that would be lost."""

from __future__ import annotations

from fastapi.routing import APIRoute

from app.backendai.app import create_manager_app
from app.backendai.file_router import router as file_router
from app.backendai.folder_router import router as folder_router
from app.backendai.quota_router import router as quota_router
from app.backendai.status_router import router as status_router
from app.backendai.volume_router import router as volume_router
from app.observability.metrics import Metrics

ROUTERS = (status_router, volume_router, folder_router, file_router, quota_router)


def test_every_route_is_served_directly() -> None:
    app = create_manager_app(Metrics())
    routes = [route for route in app.router.routes if isinstance(route, APIRoute)]
    assert len(routes) == len(app.router.routes)
    defined = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    served = {(route.path, frozenset(route.methods or ())) for route in routes}
    assert served == {(r.path, frozenset(r.methods or ())) for r in defined}
    assert len(routes) == len(defined)


def test_the_routers_have_nothing_an_include_would_merge() -> None:
    for router in ROUTERS:
        assert router.dependencies == []
        assert router.callbacks == []
        assert router.route_class is APIRoute
        for route in router.routes:
            assert isinstance(route, APIRoute)
            assert route.path.startswith(router.prefix)
