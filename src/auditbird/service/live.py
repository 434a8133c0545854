"""Live tail: new events matching the filters, as server-sent events, by polling the library.

``GET /v1/stream`` (the viewer's live tail) serves :func:`tail` for an API key or a viewer link.

Polling ``list(since=...)`` (rather than a hook inside this process) sees events that other
processes publish to the same store. Each poll looks back a few seconds, so an event committed
a little after its ``timestamp`` is still caught; ``uid`` de-duplicates what was already sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from ..async_log import AsyncAuditLog
from ..event import now_ms
from ..query import parse_time
from .access import ACCESS_ACTIONS, record_access
from .auth import ReaderDep, bearer_token, still_valid
from .problems import ProblemError
from .reads import Filters, hides_access, list_filters, restricted
from .state import ServiceState

__all__ = ["tail", "router", "POLL_SECONDS", "LOOKBACK_MS"]

POLL_SECONDS = 0.5
LOOKBACK_MS = 5_000
HEARTBEAT_SECONDS = 15.0
MAX_PER_POLL = 2_000


def _frame(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def tail(
    log: AsyncAuditLog,
    filters: dict[str, Any],
    *,
    since: int,
    hide_access: bool,
    disconnected: Callable[[], Awaitable[bool]],
    expires_at: int | None = None,
    still_valid: Callable[[], bool] | None = None,
    poll_seconds: float = POLL_SECONDS,
) -> AsyncIterator[str]:
    """SSE frames: ``events`` (a JSON array, oldest first), ``expired``, and heartbeats."""
    sent: dict[str, int] = {}  # uid -> timestamp, for the look-back window only
    high = since
    last_beat = time.monotonic()
    yield "retry: 1000\n\n"
    while True:
        if await disconnected():
            return
        if expires_at is not None and now_ms() >= expires_at:
            yield _frame("expired", {"detail": "this viewer link has expired"})
            return
        if still_valid is not None and not still_valid():
            yield _frame("expired", {"detail": "this key or link was revoked"})
            return
        window = max(since, high - LOOKBACK_MS)
        fresh: list[dict[str, Any]] = []
        cursor: str | None = None
        scanned = 0
        while scanned < MAX_PER_POLL:
            page = await log.list(since=window, limit=500, cursor=cursor, **filters)
            scanned += len(page.events)
            for event in page.events:
                if event.uid in sent or (hide_access and event.action in ACCESS_ACTIONS):
                    continue
                sent[event.uid] = event.timestamp
                fresh.append(event.to_dict())
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        if fresh:
            fresh.reverse()  # oldest first: the client puts each on top in turn
            high = max(high, max(e["timestamp"] for e in fresh))
            yield _frame("events", fresh)
            last_beat = time.monotonic()
        floor = max(since, high - LOOKBACK_MS)
        for uid in [u for u, ts in sent.items() if ts < floor]:
            del sent[uid]
        if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
            yield ": keep-alive\n\n"
            last_beat = time.monotonic()
        await asyncio.sleep(poll_seconds)


router = APIRouter(tags=["viewer"])


@router.get("/v1/stream", summary="Live tail: new events matching the filters, as server-sent events")
async def stream(
    request: Request,
    who: ReaderDep,
    filters: Annotated[Filters, Depends()],
) -> StreamingResponse:
    state: ServiceState = request.app.state.auditbird
    restricted(who, filters)
    values = list_filters(filters)
    log = state.reader(who.workspace)
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
    token = bearer_token(request.headers.get("authorization")) or ""
    frames = tail(
        log,
        values,
        since=start,
        hide_access=hides_access(values),
        disconnected=request.is_disconnected,
        expires_at=who.grant.expires_at if who.grant else None,
        # Re-checked while the stream runs: a revoked key or rotated link secret ends it.
        still_valid=lambda: still_valid(request.app, token),
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
