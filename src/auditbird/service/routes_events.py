"""``/v1/events``, ``/v1/events/{uid}``, ``/v1/actions``, ``/v1/export``: the library over HTTP.

Handlers call the library (an :class:`AsyncAuditLog` forced to the key's workspace, through the
shared reads of :mod:`.reads`); they never build queries or touch the store themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic_core import to_json

from .._errors import Problem
from ..event import Event
from ..log import AuditLog
from ..stores.base import Row
from ..stores.capabilities import StoredCopyStore, supports
from .auth import AnyKey, Credential, ReadKey, WriteKey, authenticate, bearer_token
from .ingest import INLINE_BYTES, body_digest, prepare_items, read_body
from .keys import ApiKey
from .problems import ProblemError
from .reads import Filters, export_response, find_event, json_response, list_page
from .schemas import EVENT_BODY, EventBatch, EventPage, ProblemDetail, PublishCount
from .state import ServiceState
from .writer import KEPT, WriterView

__all__ = ["router", "publish_lean"]

router = APIRouter(prefix="/v1", tags=["events"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ProblemDetail, "content": {"application/problem+json": {}}, "description": text}
    for code, text in (
        (400, "Malformed request"),
        (401, "No or bad API key"),
        (403, "The key's scope or workspace does not allow this"),
        (422, "Invalid events or parameters; `errors` lists every bad field"),
        (429, "Rate limit exceeded; see Retry-After"),
        (503, "The store is unavailable; nothing was written, retry"),
    )
}


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.auditbird
    return state


@router.post(
    "/events",
    status_code=201,
    summary="Publish one event, a JSON array of events, or NDJSON",
    openapi_extra=EVENT_BODY,
    response_model=None,
    responses={
        201: {
            "model": Event | EventBatch | PublishCount,
            "description": "Stored (durably) and returned; with `Prefer: return=minimal`, only the count",
        },
        413: {"model": ProblemDetail, "description": "Body or an event over the size limit"},
        **_ERRORS,
    },
)
async def publish(
    request: Request,
    key: WriteKey,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=255,
            description="Retrying with the same key and body stores nothing twice and answers the same",
        ),
    ] = None,
    prefer: Annotated[
        str | None,
        Header(
            description='`return=minimal` (RFC 7240): answer only `{"count": n}` instead of the stored '
            "events (then `Preference-Applied: return=minimal`); cheaper for large batches"
        ),
    ] = None,
) -> Response:
    """This signature documents the operation (security, headers, body, answers). The app
    serves it through :func:`publish_lean` (see :mod:`.fastpath`): the same checks, in the same
    order, without FastAPI's per-request dependency injection."""
    return await _publish(request, key)


async def publish_lean(request: Request) -> Response:
    """``POST /v1/events`` without the router: auth as :data:`WriteKey` does, then the same
    handler."""
    key = authenticate(_state(request), bearer_token(request.headers.get("authorization")), "write")
    return await _publish(request, key)


def _idempotency_key(request: Request) -> str | None:
    value = request.headers.get("idempotency-key")
    if value is not None and len(value) > 255:
        raise ProblemError(
            422,
            "invalid parameters",
            errors=[Problem("header.idempotency-key", "String should have at most 255 characters")],
        )
    return value or None


def _wants_minimal(request: Request) -> bool:
    return any(
        "return=minimal" in value.replace(" ", "").lower() for value in request.headers.getlist("prefer")
    )


async def _publish(request: Request, key: ApiKey) -> Response:
    state = _state(request)
    idempotency_key = _idempotency_key(request)
    body = await read_body(request, state.limits)
    digest = body_digest(body) if idempotency_key else ""
    if idempotency_key:
        found = state.keys.idempotent_get(key.workspace, idempotency_key)
        if found is not None:  # the first answer again (Preference-Applied if it was minimal)
            minimal = _wants_minimal(request) and found[2].startswith(b'{"count":')
            return _replay(found, digest, _MINIMAL_APPLIED if minimal else None)
    prepare = functools.partial(
        prepare_items,
        body,
        request.headers.get("content-type", "application/json"),
        workspace=key.workspace,
        limits=state.limits,
        idempotency_key=idempotency_key,
        uid_secret=state.uid_secret,
    )
    kept: dict[int, Row] = {}
    holder = KEPT.set(kept)
    try:
        if len(body) > INLINE_BYTES:
            # Parsing, validating and encoding a large body must not hold up other requests: the
            # library's publish runs whole on an ingest thread, its rows joining the group commit
            # (each event validated once, there).
            items, single, stored = await state.store.in_ingest_thread(
                functools.partial(_publish_blocking, state, key.workspace, prepare)
            )
        else:
            items, single = prepare()
            log = state.log(key.workspace)
            stored = [await log.publish_audit_log(items[0])] if single else await log.publish_many(items)
    finally:
        KEPT.reset(holder)
    state.metrics.add("events_written", len(stored), workspace=key.workspace)
    minimal = _wants_minimal(request)
    if minimal:
        data: Any = {"count": len(stored)}
        if kept:  # what was not stored as sent (a re-published uid: its first copy), by index
            data["kept"] = [{"index": i, "event": stored[i].to_dict()} for i in sorted(kept)]
    else:
        stored = await _as_stored(state, key.workspace, items, stored)
        data = (
            stored[0].to_dict() if single else {"data": [e.to_dict() for e in stored], "count": len(stored)}
        )
    raw = to_json(data)
    headers = _MINIMAL_APPLIED if minimal else None
    if idempotency_key:
        found = state.keys.idempotent_put(key.workspace, idempotency_key, digest, 201, raw)
        return _replay(found, digest, headers)
    return Response(raw, status_code=201, media_type="application/json", headers=headers)


_MINIMAL_APPLIED = {"Preference-Applied": "return=minimal"}


def _replay(found: tuple[str, int, bytes], digest: str, headers: dict[str, str] | None = None) -> Response:
    request_digest, status, raw = found
    if request_digest != digest:
        raise ProblemError(
            422,
            "this Idempotency-Key was used with a different body; use a new key for a new request",
            errors=[Problem("Idempotency-Key", "reused with a different body")],
            slug="idempotency-key-reused",
        )
    return Response(raw, status_code=status, media_type="application/json", headers=headers)


def _publish_blocking(
    state: ServiceState,
    workspace: str,
    prepare: Callable[[], tuple[list[Any], bool]],
    view: WriterView,
) -> tuple[list[Any], bool, list[Event]]:
    """:func:`prepare_items`, then the library's publish through the writer's blocking view:
    on an ingest thread, the whole CPU-bound part of a request in one hand-off."""
    items, single = prepare()
    log = AuditLog(
        view, workspace=workspace, strict=state.strict, registry=state.registry, limits=state.event_limits
    )
    stored = [log.publish_audit_log(items[0])] if single else log.publish_many(items)
    return items, single, stored


async def _as_stored(
    state: ServiceState, workspace: str, items: list[Any], stored: list[Event]
) -> list[Event]:
    """A retried event that carried its own ``uid`` but no ``timestamp`` was stored the first
    time with that time: answer what is stored, so the retry's answer is the same.

    A store of the stored-copy tier already answered those copies with the publish: nothing
    to read back (one read per event would cost a large idempotent batch more than its write)."""
    if supports(state.store.sync, StoredCopyStore):
        return stored
    log = state.log(workspace)
    out = list(stored)
    for i, item in enumerate(items):
        if isinstance(item, dict) and "uid" in item and "timestamp" not in item:
            found = await log.get(out[i].uid)
            if found is not None:
                out[i] = found
    return out


@router.get(
    "/events",
    summary="List events, newest first (the seed's getAuditLog with `event_id`)",
    response_model=EventPage,
    responses=_ERRORS,
)
async def list_events(
    request: Request,
    key: ReadKey,
    filters: Annotated[Filters, Depends()],
    limit: Annotated[int, Query(ge=1, le=1000, description="Events per page")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page")
    ] = None,
) -> Response:
    return await list_page(_state(request), key, filters, limit, cursor)


@router.get(
    "/events/{uid:path}",
    summary="One event by uid (in the key's workspace)",
    response_model=Event,
    responses={404: {"model": ProblemDetail, "description": "No such event in this workspace"}, **_ERRORS},
)
async def get_event(
    request: Request, key: ReadKey, uid: Annotated[str, Path(min_length=1, max_length=128)]
) -> Response:
    state = _state(request)
    event = await find_event(state, Credential(key), uid, "/v1/events/{uid}")
    if event is None:
        raise ProblemError(404, f"no event with uid {uid!r} in this key's workspace")
    state.metrics.add("events_read", workspace=key.workspace)
    return json_response(event.to_dict())


@router.get(
    "/actions",
    tags=["actions"],
    summary="Registered actions and their metadata JSON Schemas, by version",
    responses=_ERRORS,
)
async def list_actions(request: Request, key: AnyKey) -> dict[str, dict[str, Any]]:
    return _state(request).registry.json_schemas()


@router.get(
    "/export",
    summary="Every matching event, streamed as CSV or NDJSON (memory stays flat)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}, "application/x-ndjson": {}}, "description": "The events"},
        **_ERRORS,
    },
)
async def export(
    request: Request,
    key: ReadKey,
    filters: Annotated[Filters, Depends()],
    format: Annotated[
        Literal["csv", "ndjson"], Query(description="csv (cells neutralised) or ndjson")
    ] = "ndjson",
) -> StreamingResponse:
    return await export_response(_state(request), key, filters, format)
