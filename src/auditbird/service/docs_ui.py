"""``/docs`` (Swagger UI) and ``/redoc`` served offline, like the viewer: no CDN.

FastAPI's default pages load Swagger UI and ReDoc from a CDN, so on a machine without internet
``/docs`` is blank. The assets ship in the ``fastapi-offline`` package (part of the ``service``
extra); this module serves them from there under ``/docs-assets/`` and points the pages at them.
Swagger UI's online validator badge is turned off (it would send the spec to a third party).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["install", "ASSETS_PATH", "assets_dir"]

ASSETS_PATH = "/docs-assets"


def assets_dir() -> Path:
    """Where the Swagger UI and ReDoc files are installed (``fastapi_offline``'s ``static/``)."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def install(app: FastAPI, *, title: str = "auditbird") -> None:
    """Mount the assets and the ``/docs`` and ``/redoc`` pages (create the app with
    ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} API",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
