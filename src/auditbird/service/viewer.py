"""The web viewer: ``GET /`` and its assets, plus the few reads the API itself does not offer.

``install(app)`` (called by :func:`auditbird.service.create_app`) adds:

- ``GET /`` and ``/static/*``: a page of hand-written HTML, CSS and JS shipped in the package;
- ``GET /v1/viewer/session``: who the credential is, and which endpoints the page should read;
- ``GET /v1/histogram``: counts over time by action for the list filters (the activity chart);
- ``GET /v1/stream``: server-sent events, a live tail of new events matching the filters;
- ``GET /v1/viewer/actions``: registered actions and the actions seen in the workspace;
- ``GET /v1/viewer/events``, ``/v1/viewer/events/{uid}``, ``/v1/viewer/export``: the API's reads,
  for viewer links too, with the link's actor/target restriction enforced.

Every route accepts an API key with read scope (through the service's own auth) or a viewer
link (:mod:`.viewer_links`), and reads only the credential's workspace, through the library.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Security
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.staticfiles import StaticFiles
from starlette.background import BackgroundTask

from .._errors import Problem
from ..async_log import AsyncAuditLog
from ..codec import encode
from ..event import Event, now_ms
from ..query import parse_time
from ..stores import open_store
from .access import ACCESS_ACTIONS, record_access
from .auth import bearer, require
from .keys import ApiKey
from .live import tail
from .problems import ProblemError
from .routes_events import Filters, _json, export, list_events
from .state import ServiceState
from .viewer_links import PREFIX, Grant, ViewerLinks

__all__ = ["install", "Viewer", "STATIC_DIR", "viewer_link_key"]

STATIC_DIR = FilePath(__file__).with_name("static")
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_read_key = require("read")


@dataclass(frozen=True)
class Viewer:
    """Who reads: an API key, or a viewer link's grant (then ``grant`` is set)."""

    key: ApiKey  # for a link: a stand-in naming the link, so reads are recorded like any other
    grant: Grant | None = None

    @property
    def workspace(self) -> str:
        return self.key.workspace

    def restrictions(self) -> dict[str, str]:
        g = self.grant
        if g is None:
            return {}
        found = {"actor_id": g.actor_id, "target_type": g.target_type, "target_id": g.target_id}
        return {k: v for k, v in found.items() if v is not None}

    def allows(self, event: Event) -> bool:
        r = self.restrictions()
        if "actor_id" in r and event.actor.id != r["actor_id"]:
            return False
        if "target_type" in r or "target_id" in r:
            return any(
                r.get("target_type", t.kind) == t.kind and r.get("target_id", t.id) == t.id
                for t in event.targets
            )
        return True


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.auditbird
    return state


def _links_of(app: Any) -> ViewerLinks:
    links: ViewerLinks | None = getattr(app.state, "viewer_links", None)
    if links is None:
        links = app.state.viewer_links = ViewerLinks(app.state.auditbird.keys.path)
    return links


def _links(request: Request) -> ViewerLinks:
    return _links_of(request.app)


def viewer_link_key(app: Any, token: str) -> ApiKey | None:
    """For the service's own auth, should it accept viewer links on ``/v1/events`` and
    ``/v1/export``: a read-only stand-in key for an unexpired link *without* an actor/target
    restriction (those routes could not enforce one), else None."""
    if not token.startswith(PREFIX):
        return None
    grant = _links_of(app).verify(token)
    if grant is None or grant.actor_id or grant.target_type or grant.target_id:
        return None
    return ApiKey(grant.link_id, grant.workspace, "read", name="viewer link")


async def viewer(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> Viewer:
    """An API key with read scope (the service's own check) or a live viewer link."""
    token = credentials.credentials if credentials is not None else ""
    if not token.startswith(PREFIX):
        return Viewer(await _read_key(request, credentials))
    grant = _links(request).verify(token)
    if grant is None:
        raise ProblemError(
            401,
            "this viewer link has expired or is not valid for this server's keys file "
            f"({_links(request).path.name}, beside its store); ask for a new one "
            "(`auditbird keys viewer-link --store <the server's store>`)",
            slug="unauthorized",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    state = _state(request)
    wait = state.limiter.take(grant.link_id, state.limits.default_rate)
    if wait > 0:
        raise ProblemError(
            429,
            "too many requests with this viewer link; retry after the Retry-After delay",
            slug="rate-limited",
            headers={"Retry-After": state.limiter.retry_after(wait)},
        )
    stand_in = ApiKey(grant.link_id, grant.workspace, "read", name="viewer link")
    return Viewer(stand_in, grant)


ViewerDep = Annotated[Viewer, Depends(viewer)]


def _restricted(who: Viewer, filters: Filters) -> Filters:
    """Apply a link's restriction to the filters; asking for anything else is a 403."""
    if filters.workspace is not None and filters.workspace != who.workspace:
        raise ProblemError(
            403,
            f"this credential is scoped to workspace {who.workspace!r}; it cannot read {filters.workspace!r}",
            errors=[Problem("workspace", "must be the credential's workspace (or left out)")],
        )
    for name, value in who.restrictions().items():
        asked = filters.values.get(name)
        if asked is not None and asked != value:
            raise ProblemError(
                403,
                f"this viewer link shows only {name} {value!r}",
                errors=[Problem(name, f"must be {value!r} (the link's restriction) or left out")],
            )
        filters.values[name] = value
    return filters


def _read_log(request: Request, workspace: str) -> AsyncAuditLog:
    """A log for the viewer's heavier reads (chart counts, live-tail polls).

    On an SQLite file these get a connection of their own: SQLite in WAL mode reads in
    parallel, so a chart counting a million rows never holds up the API's next page.
    """
    state = _state(request)
    reader = getattr(request.app.state, "viewer_reader", None)
    if reader is None:
        backend = getattr(state.store, "sync", state.store)  # the blocking store: it has `histogram`
        path = getattr(backend, "path", None)
        if type(backend).__name__ == "SQLiteStore" and path and path != ":memory:":
            reader = open_store(f"sqlite:///{path}")
            request.app.state.viewer_reader_owned = reader
        else:
            reader = backend
        request.app.state.viewer_reader = reader
    return AsyncAuditLog(reader, workspace=workspace, registry=state.registry)


def _list_filters(filters: Filters) -> dict[str, Any]:
    return {k: v for k, v in filters.values.items() if k not in ("since", "until")}


def _hides_access(filters: dict[str, Any]) -> bool:
    return not any(a in ACCESS_ACTIONS for a in filters.get("action") or ())


class _Cache:
    """Small per-workspace answers that are costly to compute and fine a minute old."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._data: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any:
        found = self._data.get(key)
        return found[1] if found and time.monotonic() - found[0] < self.ttl else None

    def put(self, key: Any, value: Any) -> None:
        if len(self._data) > 1_000:
            self._data.clear()
        self._data[key] = (time.monotonic(), value)


async def _oldest(log: AsyncAuditLog, restrictions: dict[str, str], cache: _Cache) -> int | None:
    """The time of the workspace's oldest event (to a minute), by bisection over indexed reads."""
    key = (log.workspace, tuple(sorted(restrictions.items())))
    found = cache.get(key)
    if found is not None:
        return int(found) if found >= 0 else None
    newest = await log.list(limit=1, **restrictions)
    if not newest.events:
        cache.put(key, -1)
        return None
    lo, hi = 0, newest.events[0].timestamp + 1  # an event exists before hi; none before lo
    while hi - lo > 60_000:
        mid = (lo + hi) // 2
        page = await log.list(until=mid, limit=1, **restrictions)
        if page.events:
            hi = mid
        else:
            lo = mid
    cache.put(key, lo)
    return lo


router = APIRouter(tags=["viewer"])


def _cache(request: Request, name: str) -> _Cache:
    found: _Cache | None = getattr(request.app.state, name, None)
    if found is None:
        found = _Cache()
        setattr(request.app.state, name, found)
    return found


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


@router.get("/v1/viewer/session", summary="Who the viewer is signed in as, and what to read")
async def session(request: Request, who: ViewerDep) -> Response:
    root = request.scope.get("root_path", "")
    link = who.grant is not None
    endpoints = {
        "events": f"{root}/v1/viewer/events" if link else f"{root}/v1/events",
        "export": f"{root}/v1/viewer/export" if link else f"{root}/v1/export",
        "event": f"{root}/v1/viewer/events/{{uid}}",
        "actions": f"{root}/v1/viewer/actions",
        "histogram": f"{root}/v1/histogram",
        "stream": f"{root}/v1/stream",
    }
    return _json(
        {
            "kind": "viewer_link" if link else "api_key",
            "workspace": who.workspace,
            "scope": "read" if link else who.key.scope,
            "name": who.key.name,
            "restrict": who.restrictions(),
            "expires_at": who.grant.expires_at if who.grant else None,
            "endpoints": endpoints,
        }
    )


@router.get("/v1/viewer/events", summary="`GET /v1/events` for viewer links (restriction enforced)")
async def viewer_events(
    request: Request,
    who: ViewerDep,
    filters: Annotated[Filters, Depends()],
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    return await list_events(
        request=request, key=who.key, filters=_restricted(who, filters), limit=limit, cursor=cursor
    )


@router.get("/v1/viewer/export", summary="`GET /v1/export` for viewer links (restriction enforced)")
async def viewer_export(
    request: Request,
    who: ViewerDep,
    filters: Annotated[Filters, Depends()],
    format: Annotated[Literal["csv", "ndjson"], Query()] = "ndjson",
) -> StreamingResponse:
    return await export(request=request, key=who.key, filters=_restricted(who, filters), format=format)


@router.get("/v1/viewer/events/{uid:path}", summary="One event and its stored row")
async def viewer_event(
    request: Request, who: ViewerDep, uid: Annotated[str, Path(min_length=1, max_length=128)]
) -> Response:
    state = _state(request)
    event = await state.log(who.workspace).get(uid)
    if event is not None and not who.allows(event):
        event = None
    await record_access(
        state.log(who.workspace, strict=False),
        who.key,
        "audit_log.viewed",
        "/v1/viewer/events/{uid}",
        {"uid": uid},
        count=0 if event is None else 1,
    )
    if event is None:
        raise ProblemError(404, f"no event with uid {uid!r} in this workspace")
    row = encode(event)._asdict()
    row.pop("position", None)
    return _json({"event": event.to_dict(), "row": row})


@router.get("/v1/viewer/actions", summary="Registered actions and the actions seen in the workspace")
async def viewer_actions(request: Request, who: ViewerDep) -> Response:
    state = _state(request)
    restrictions = who.restrictions()
    key = (who.workspace, tuple(sorted(restrictions.items())))
    seen = _cache(request, "viewer_seen").get(key)
    if seen is None:
        log = _read_log(request, who.workspace)
        hist = await log.histogram(buckets=1, since=0, until=now_ms() + 1, **restrictions)
        seen = dict(sorted(hist.counts[0].items())) if hist.counts else {}
        _cache(request, "viewer_seen").put(key, seen)
    return _json({"registered": state.registry.names(), "seen": seen})


@router.get("/v1/histogram", summary="Event counts over time by action, for the list filters")
async def histogram(
    request: Request,
    who: ViewerDep,
    filters: Annotated[Filters, Depends()],
    buckets: Annotated[int, Query(ge=1, le=500)] = 60,
) -> Response:
    """Without ``since``, the chart starts at the workspace's oldest event (the whole log)."""
    _restricted(who, filters)
    log = _read_log(request, who.workspace)
    until_now = filters.values["until"] is None
    end = now_ms() + 1 if until_now else parse_time(filters.values["until"], field_name="until")
    if filters.values["since"] is None:
        oldest = await _oldest(log, who.restrictions(), _cache(request, "viewer_oldest"))
        start = min(oldest if oldest is not None else end - 3_600_000, end - 60_000)
    else:
        start = parse_time(filters.values["since"], field_name="since")
    if start >= end:
        raise ProblemError(422, "`since` must be before `until`", errors=[Problem("since", "after `until`")])
    # Buckets on multiples of their width: the store counts in epoch-aligned buckets, so a chart
    # that starts mid-bucket would fold two of them into its first bar.
    width = -(-(end - start) // buckets)
    start -= start % width
    buckets = -(-(end - start) // width)
    end = start + buckets * width
    values = _list_filters(filters)
    hist = await log.histogram(buckets=buckets, since=start, until=end, **values)
    hide = _hides_access(values)
    counts = [{a: n for a, n in c.items() if not (hide and a in ACCESS_ACTIONS)} for c in hist.counts]
    return _json(
        {"bucket_ms": hist.bucket_ms, "starts": hist.starts, "counts": counts, "until_now": until_now}
    )


@router.get("/v1/stream", summary="Live tail: new events matching the filters, as server-sent events")
async def stream(
    request: Request,
    who: ViewerDep,
    filters: Annotated[Filters, Depends()],
) -> StreamingResponse:
    state = _state(request)
    _restricted(who, filters)
    values = _list_filters(filters)
    log = _read_log(request, who.workspace)
    start = now_ms() - 60_000
    if filters.values["since"] is not None:
        # At most an hour back: the page already shows what came before it.
        start = max(parse_time(filters.values["since"], field_name="since"), now_ms() - 3_600_000)
    # A place among the open tails first: a refused tail costs no read and records nothing.
    assert state.tails is not None
    release = state.tails.claim(who.key.key_id)
    if isinstance(release, str):
        raise ProblemError(429, release, slug="too-many-tails", headers={"Retry-After": "5"})
    try:
        await log.list(limit=1, **values)  # bad filters are a 422 now, not a broken stream
        audit = state.log(who.workspace, strict=False)
        await record_access(audit, who.key, "audit_log.viewed", "/v1/stream", values, live=True)
    except BaseException:
        release()
        raise
    token = request.headers.get("authorization", "").partition(" ")[2].strip()

    def still_valid() -> bool:
        # Re-checked while the stream runs: a revoked key or rotated link secret ends it.
        if token.startswith(PREFIX):
            return _links(request).verify(token) is not None
        return state.keys.verify(token) is not None

    frames = tail(
        log,
        values,
        since=start,
        hide_access=_hides_access(values),
        disconnected=request.is_disconnected,
        expires_at=who.grant.expires_at if who.grant else None,
        still_valid=still_valid,
    )

    async def held() -> AsyncIterator[str]:
        try:
            async for frame in frames:
                yield frame
        finally:
            release()

    return StreamingResponse(
        held(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        background=BackgroundTask(release),  # also when the stream never started
    )


def install(app: FastAPI) -> None:
    """Add the viewer's page, assets and routes to the service's app."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="viewer-static")
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(running: Any) -> AsyncIterator[Any]:
        async with inner(running) as value:
            yield value
        for name in ("viewer_reader_owned", "viewer_links"):
            resource = getattr(running.state, name, None)
            if resource is not None:
                resource.close()

    app.router.lifespan_context = lifespan
