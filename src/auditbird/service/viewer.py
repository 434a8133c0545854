"""The web viewer: ``GET /`` and its assets, and the viewer's routes.

``install(app)`` (called by :func:`auditbird.service.create_app`) adds:

- ``GET /`` and ``/static/*``: a page of hand-written HTML, CSS and JS shipped in the package;
- the viewer's reads (:mod:`.viewer_reads`): who the credential is, the API's reads for viewer
  links with their restriction enforced, the actions seen;
- the activity chart's counts (:mod:`.viewer_chart`, ``GET /v1/histogram``);
- the live tail (:mod:`.live`, ``GET /v1/stream``, server-sent events).

Every route takes an API key with read scope or a viewer link (:data:`.auth.ReaderDep`, the
service's one credential dependency) and reads only the credential's workspace, through the
library.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from . import live, viewer_chart, viewer_reads
from .auth import Credential, viewer_link_key

__all__ = ["install", "Viewer", "STATIC_DIR", "viewer_link_key"]

STATIC_DIR = FilePath(__file__).with_name("static")
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

#: Who reads in the viewer: an API key, or a viewer link's grant (the service's credential).
Viewer = Credential

router = APIRouter(tags=["viewer"])


@router.get("/", include_in_schema=False)
async def page() -> Response:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": _CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


def install(app: FastAPI) -> None:
    """Add the viewer's page, assets and routes to the service's app."""
    app.include_router(router)
    app.include_router(viewer_reads.router)
    app.include_router(viewer_chart.router)
    app.include_router(live.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="viewer-static")
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(running: Any) -> AsyncIterator[Any]:
        async with inner(running) as value:
            yield value
        links = getattr(running.state, "viewer_links", None)  # opened by the first link seen
        if links is not None:
            links.close()

    app.router.lifespan_context = lifespan
