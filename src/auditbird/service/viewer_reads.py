"""The viewer's reads: who is signed in, and the API's reads for viewer links.

- ``GET /v1/viewer/session``: who the credential is, and which endpoints the page should read;
- ``GET /v1/viewer/events``, ``/v1/viewer/events/{uid}``, ``/v1/viewer/export``: the API's
  reads (the shared ones of :mod:`.reads`), with a link's actor/target restriction enforced;
- ``GET /v1/viewer/actions``: registered actions and the actions seen in the workspace.
"""

from __future__ import annotations

from typing import Annotated, Literal

from cachetools import TTLCache
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from ..codec import encode
from ..event import now_ms
from .auth import ReaderDep
from .problems import ProblemError
from .reads import Filters, export_response, find_event, json_response, list_page, restricted
from .state import ServiceState

__all__ = ["router"]

router = APIRouter(tags=["viewer"])

# The actions seen per (workspace, restriction): a count over the whole log, fine a minute old.
_SEEN_TTL_SECONDS = 60.0


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.auditbird
    return state


@router.get("/v1/viewer/session", summary="Who the viewer is signed in as, and what to read")
async def session(request: Request, who: ReaderDep) -> Response:
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
    return json_response(
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
    who: ReaderDep,
    filters: Annotated[Filters, Depends()],
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    return await list_page(_state(request), who.key, restricted(who, filters), limit, cursor)


@router.get("/v1/viewer/export", summary="`GET /v1/export` for viewer links (restriction enforced)")
async def viewer_export(
    request: Request,
    who: ReaderDep,
    filters: Annotated[Filters, Depends()],
    format: Annotated[Literal["csv", "ndjson"], Query()] = "ndjson",
) -> StreamingResponse:
    return await export_response(_state(request), who.key, restricted(who, filters), format)


@router.get("/v1/viewer/events/{uid:path}", summary="One event and its stored row")
async def viewer_event(
    request: Request, who: ReaderDep, uid: Annotated[str, Path(min_length=1, max_length=128)]
) -> Response:
    event = await find_event(_state(request), who, uid, "/v1/viewer/events/{uid}")
    if event is None:
        raise ProblemError(404, f"no event with uid {uid!r} in this workspace")
    row = encode(event)._asdict()
    row.pop("position", None)
    return json_response({"event": event.to_dict(), "row": row})


def _seen_cache(request: Request) -> TTLCache[tuple[object, ...], dict[str, int]]:
    found: TTLCache[tuple[object, ...], dict[str, int]] | None = getattr(
        request.app.state, "viewer_seen", None
    )
    if found is None:
        found = request.app.state.viewer_seen = TTLCache(maxsize=1_000, ttl=_SEEN_TTL_SECONDS)
    return found


@router.get("/v1/viewer/actions", summary="Registered actions and the actions seen in the workspace")
async def viewer_actions(request: Request, who: ReaderDep) -> Response:
    state = _state(request)
    restrictions = who.restrictions()
    key = (who.workspace, tuple(sorted(restrictions.items())))
    cache = _seen_cache(request)
    seen = cache.get(key)
    if seen is None:
        log = state.reader(who.workspace)
        hist = await log.histogram(buckets=1, since=0, until=now_ms() + 1, **restrictions)
        seen = cache[key] = dict(sorted(hist.counts[0].items())) if hist.counts else {}
    return json_response({"registered": state.registry.names(), "seen": seen})
