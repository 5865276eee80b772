"""Swagger UI served from assets installed with the package: /docs works with no network."""

from __future__ import annotations

from pathlib import Path

import fastapi_swagger
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

SWAGGER_ASSETS = Path(fastapi_swagger.__file__).parent / "resources"
ASSETS_URL = "/docs/assets"


def install_swagger_ui(app: FastAPI, *, title: str) -> None:
    app.mount(ASSETS_URL, StaticFiles(directory=SWAGGER_ASSETS), name="swagger-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{title} — API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
        )
