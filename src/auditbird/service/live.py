"""Live tail: new events matching the filters, as server-sent events, by polling the library.

Polling ``list(since=...)`` (rather than a hook inside this process) sees events that other
processes publish to the same store. Each poll looks back a few seconds, so an event committed
a little after its ``timestamp`` is still caught; ``uid`` de-duplicates what was already sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..async_log import AsyncAuditLog
from ..event import now_ms
from .access import ACCESS_ACTIONS

__all__ = ["tail", "POLL_SECONDS", "LOOKBACK_MS"]

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
