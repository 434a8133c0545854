"""The ASGI app: ``create_app(store_url)`` -> FastAPI, served by ``auditbird serve``.

>>> app = create_app("sqlite:///audit.db")          # keys in audit.keys.db beside it
>>> # uvicorn.run(app)  or  auditbird serve --store sqlite:///audit.db
"""

from __future__ import annotations

import gc
import hmac
import importlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, retention_schedule
from .._errors import (
    AuditValidationError,
    ConflictError,
    NotFound,
    Problem,
    StoreUnavailable,
    UnsupportedOperation,
)
from ..actions import ActionRegistry, default_registry
from ..query import Query
from ..stores import default_url, open_store
from ..stores.base import Store
from ..validation import DEFAULT_LIMITS, Limits
from . import docs_ui
from .auth import bearer_token
from .fastpath import LeanPath
from .keys import KeyStore, keys_location_for
from .limits import RateLimiter, ServiceLimits
from .metrics import MetricsMiddleware
from .problems import ProblemError, problem_response
from .routes_erasure import router as erasure_router
from .routes_events import publish_lean
from .routes_events import router as events_router
from .routes_proof import router as proof_router
from .routes_streams import install as install_streams
from .state import ServiceState
from .writer import GroupCommitStore

__all__ = ["create_app", "app_from_env"]

log = logging.getLogger("auditbird.service")

DESCRIPTION = """\
Typed, immutable audit events over HTTP. Every request carries an API key
(`Authorization: Bearer ab_...`, from `auditbird keys create`) scoped to one workspace and
to `read`, `write` or `admin`; nothing outside the key's workspace is ever read or written.
Errors are RFC 9457 `application/problem+json` listing every bad field.
"""


def create_app(
    store: str | Store | None = None,
    *,
    keys: str | os.PathLike[str] | KeyStore | None = None,  # a path, a postgresql:// URL or a store
    limits: ServiceLimits | None = None,
    registry: ActionRegistry | None = None,
    strict: bool = False,
    event_limits: Limits = DEFAULT_LIMITS,
    metrics_token: str | None = None,
    retention_interval: float = 0,
) -> FastAPI:
    """The service over ``store`` (a URL or store object; default ``AUDITBIRD_URL``).

    ``metrics_token``: if set, ``/metrics`` answers only to it, with every figure (requests,
    latency, events, streams, by workspace too); if not, ``/metrics`` is open and shows only the
    build (nothing a request moves)."""
    url = store if isinstance(store, str) else default_url() if store is None else ""
    backend: Store = open_store(url) if isinstance(store, str) or store is None else store
    if isinstance(keys, KeyStore):
        key_store = keys
    else:
        key_store = KeyStore(keys if keys is not None else keys_location_for(url or default_url()))
    service_limits = limits or ServiceLimits()
    state = ServiceState(
        store=GroupCommitStore(backend),
        keys=key_store,
        registry=registry if registry is not None else default_registry,
        limits=service_limits,
        event_limits=event_limits,
        strict=strict,
        limiter=RateLimiter(service_limits.burst_seconds),
        uid_secret=key_store.server_secret(),
        metrics_token=metrics_token or None,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        retention = retention_schedule.start(backend, retention_interval)  # seconds; 0: none
        yield
        await retention_schedule.stop(retention)
        await state.store.aclose()
        state.keys.close()
        state.cpu_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="auditbird",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        separate_input_output_schemas=False,
        docs_url=None,  # served offline by .docs_ui, not from a CDN
        redoc_url=None,
    )
    docs_ui.install(app)
    app.state.auditbird = state
    # The hot route skips the router (inside the metrics middleware, so it is still counted).
    publish_route = next(r for r in events_router.routes if isinstance(r, APIRoute) and r.name == "publish")
    app.add_middleware(LeanPath, method="POST", path="/v1/events", handler=publish_lean, route=publish_route)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    _install_error_handlers(app, state)
    app.include_router(proof_router)  # before /events/{uid:path}, which would take .../proof
    app.include_router(events_router)
    app.include_router(erasure_router)
    install_streams(app, url, backend)
    _install_ops_routes(app, state)
    try:
        viewer = importlib.import_module(f"{__package__}.viewer")  # the web viewer, when built in
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.viewer":
            raise
        app.add_api_route("/", _to_docs, include_in_schema=False)
    else:
        viewer.install(app)
    return app


async def _to_docs() -> RedirectResponse:
    return RedirectResponse("/docs")


def _install_ops_routes(app: FastAPI, state: ServiceState) -> None:
    @app.get("/healthz", tags=["ops"], summary="Liveness and store reachability")
    async def healthz() -> Response:
        try:  # a read the store must answer: an empty workspace no key can name
            await state.store.query(Query(workspace="\x00healthz", limit=1))
        except StoreUnavailable as exc:
            return problem_response(503, f"the store is unavailable: {exc}")
        return Response('{"status":"ok"}', media_type="application/json")

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics (text exposition format)",
        description="Without a metrics token, open and showing only what no request moves "
        "(`auditbird_build_info`): any figure a request moves would let one tenant watch "
        "another's traffic. To get requests by route and status, latency, store errors, 429s, "
        "events written and read and the log streams' figures (in total and by workspace), start "
        "the server with a metrics token (`serve --metrics-token` / `AUDITBIRD_METRICS_TOKEN`): "
        "then `/metrics` answers only to `Authorization: Bearer <token>`, with all of them.",
    )
    async def metrics(request: Request) -> Response:
        token = state.metrics_token
        if token:
            given = bearer_token(request.headers.get("authorization")) or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                return problem_response(
                    401,
                    "/metrics needs the server's metrics token: `Authorization: Bearer <token>`",
                    slug="unauthorized",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return Response(
            state.metrics.render(per_workspace=bool(token)),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )


def _install_error_handlers(app: FastAPI, state: ServiceState) -> None:
    def instance(request: Request) -> str:
        return request.url.path

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return exc.response(instance(request))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AuditValidationError)
        # Only a write can have stored nothing; a read's bad parameter must not say so.
        title = "invalid input; nothing was stored" if request.method == "POST" else "invalid parameters"
        return problem_response(422, title, errors=exc.problems, instance=instance(request))

    async def on_request_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = [
            Problem(".".join(str(p) for p in err.get("loc", ())), str(err.get("msg", "invalid")))
            for err in exc.errors()
        ]
        return problem_response(422, "invalid parameters", errors=problems, instance=instance(request))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(
            exc.status_code, str(exc.detail), headers=exc.headers, instance=instance(request)
        )

    async def on_store(request: Request, exc: Exception) -> Response:
        state.metrics.add("store_errors")
        log.warning("store unavailable: %s", exc)
        return problem_response(
            503, f"the store is unavailable; nothing was written, retry: {exc}", headers={"Retry-After": "1"}
        )

    def library_error(status: int) -> Callable[[Request, Exception], Awaitable[Response]]:
        # Each of the library's own errors has a handler of its own (not the catch-all): the lean
        # POST path answers only errors with a handler of their class, else it re-raises.
        async def on_error(request: Request, exc: Exception) -> Response:
            return problem_response(status, str(exc), instance=instance(request))

        return on_error

    async def on_other(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(500, "internal error; it has been logged", instance=instance(request))

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(AuditValidationError, on_validation)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(StoreUnavailable, on_store)
    app.add_exception_handler(NotFound, library_error(404))
    app.add_exception_handler(ConflictError, library_error(409))
    app.add_exception_handler(UnsupportedOperation, library_error(501))
    app.add_exception_handler(Exception, on_other)


def app_from_env() -> FastAPI:
    """The app ``auditbird serve`` runs (``uvicorn --factory``): settings from the environment."""
    if os.getcwd() not in sys.path:  # as the CLI's --actions: the application's own modules
        sys.path.insert(0, os.getcwd())
    for name in filter(None, (s.strip() for s in os.environ.get("AUDITBIRD_ACTIONS", "").split(","))):
        importlib.import_module(name)

    def number(name: str, default: float) -> float:
        raw = os.environ.get(name)
        return float(raw) if raw else default

    defaults = ServiceLimits()
    limits = ServiceLimits(
        max_request_bytes=int(number("AUDITBIRD_MAX_REQUEST_BYTES", defaults.max_request_bytes)),
        max_event_bytes=int(number("AUDITBIRD_MAX_EVENT_BYTES", defaults.max_event_bytes)),
        default_rate=number("AUDITBIRD_RATE_LIMIT", defaults.default_rate),
        max_events_per_request=int(
            number("AUDITBIRD_MAX_EVENTS_PER_REQUEST", defaults.max_events_per_request)
        ),
        max_tails_per_key=int(number("AUDITBIRD_MAX_TAILS_PER_KEY", defaults.max_tails_per_key)),
        max_tails=int(number("AUDITBIRD_MAX_TAILS", defaults.max_tails)),
    )
    keys = os.environ.get("AUDITBIRD_KEYS")
    app = create_app(
        default_url(),
        keys=keys or None,  # a file path or a postgresql:// URL (a Path would mangle the URL)
        limits=limits,
        strict=os.environ.get("AUDITBIRD_STRICT", "") in ("1", "true", "yes"),
        metrics_token=os.environ.get("AUDITBIRD_METRICS_TOKEN") or None,
        retention_interval=retention_schedule.interval_from_env(),
    )
    tune_gc()
    return app


def tune_gc() -> None:
    """For a server process (``auditbird serve`` calls it; an app embedded in another process
    does not): everything loaded at start-up (FastAPI, pydantic schemas, the app) is moved out
    of the cyclic GC's sight (``gc.freeze``), and young collections run less often. A batch of
    1,000 events allocates tens of thousands of objects that all stay alive until it is
    answered; with the defaults the collector rescans them, and the whole heap, many times per
    request (measured in process: ~20% of the event loop's CPU for a batch POST, ~25% for a
    single-event POST)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 10)
