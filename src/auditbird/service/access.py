"""Reads are audited (Retraced's way): each read or export records an event in the key's workspace.

``audit_log.viewed`` (``GET /v1/events``, ``GET /v1/events/{uid}``) and ``audit_log.exported``
(``GET /v1/export``) are ordinary events in the reader's own workspace, with the key as actor.
So that reading a log does not change what the next read shows (a page of 50 that is half
"someone looked at this" is no use, and a client paging to the end would never get there),
reads leave these two actions out unless asked for by name: ``?action=audit_log.viewed``.
The record of a read is written after the read, so a read never contains itself, and it is
written before the answer is sent: if it cannot be stored, the read fails with 503 (fail
closed: no unaudited reads).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..async_log import AsyncAuditLog
from ..event import Event
from ..query import encode_cursor
from ..reserved import system_events
from .keys import ApiKey

__all__ = ["ACCESS_ACTIONS", "read_page", "iter_pages", "record_access"]

ACCESS_ACTIONS = frozenset({"audit_log.viewed", "audit_log.exported"})
# How many stored rows one page may skip over (hidden access events) before it is cut short;
# a short page still has a next_cursor, so nothing is lost, the client just asks again.
MAX_SCAN = 10_000


def _hides_access(filters: dict[str, Any]) -> bool:
    actions: Sequence[str] = filters.get("action") or ()
    return not any(a in ACCESS_ACTIONS for a in actions)


async def read_page(
    log: AsyncAuditLog, filters: dict[str, Any], limit: int, cursor: str | None
) -> tuple[list[Event], str | None]:
    """One page of at most ``limit`` events, newest first, and the next page's cursor."""
    if not _hides_access(filters):
        page = await log.list(limit=limit, cursor=cursor, **filters)
        return page.events, page.next_cursor
    kept: list[Event] = []
    scanned = 0
    while True:
        want = limit + 1 - len(kept)
        batch = min(max(want * 2, 100), 1_000)
        page = await log.list(limit=batch, cursor=cursor, **filters)
        scanned += len(page.events)
        for event in page.events:
            if event.action not in ACCESS_ACTIONS:
                kept.append(event)
                if len(kept) > limit:
                    last = kept[limit - 1]
                    return kept[:limit], encode_cursor(last.timestamp, last.uid)
        if page.next_cursor is None:
            return kept, None
        cursor = page.next_cursor
        if scanned >= MAX_SCAN:
            return kept, cursor


async def iter_pages(
    log: AsyncAuditLog, filters: dict[str, Any], page_size: int = 1_000
) -> AsyncIterator[list[Event]]:
    """Every matching event, a page at a time (the export's flat-memory loop)."""
    hide = _hides_access(filters)
    cursor: str | None = None
    while True:
        page = await log.list(limit=page_size, cursor=cursor, **filters)
        events = [e for e in page.events if e.action not in ACCESS_ACTIONS] if hide else page.events
        if events:
            yield events
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _clip(value: Any) -> Any:
    if isinstance(value, str):
        return value[:200]
    if isinstance(value, list | tuple):
        return [_clip(v) for v in value[:20]]
    return value


async def record_access(
    log: AsyncAuditLog, key: ApiKey, action: str, endpoint: str, filters: dict[str, Any], **extra: Any
) -> None:
    """Store the record of a read (``log`` is non-strict: these actions need no schema)."""
    metadata: dict[str, Any] = {
        "endpoint": endpoint,
        "filters": {k: _clip(v) for k, v in filters.items() if v not in (None, [], ())},
        **extra,
    }
    with system_events():  # audit_log.* is reserved to auditbird's own records
        await log.publish_audit_log(
            {
                "id": f"audit_log:{key.workspace or 'default'}",
                "action": action,
                "actor": {"id": key.key_id, "name": key.name or f"api key {key.key_id}", "type": "api_key"},
                "targets": [{"id": key.workspace or "default", "type": "audit_log"}],
                "metadata": metadata,
            }
        )
