"""What the sync and async facades share: turning arguments into a Query and rows into a Page."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._errors import AuditValidationError, Problem
from .actions import ActionRegistry, default_registry
from .codec import decode, encode
from .event import Event
from .query import MAX_LIMIT, Query, decode_cursor, encode_cursor, parse_time
from .stores.base import Row
from .validation import DEFAULT_LIMITS, Limits, validate_event, validate_events

TimeArg = int | str | datetime | None


@dataclass
class Page:
    """One page of :meth:`AuditLog.list`: the events and the cursor of the next page (or None)."""

    events: list[Event]
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


class LogCore:
    """Validation, defaults, codecs and cursors: everything a store does not know."""

    def __init__(
        self,
        *,
        workspace: str = "",
        strict: bool = False,
        registry: ActionRegistry | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.workspace = workspace
        self.strict = strict
        self.registry = registry if registry is not None else default_registry
        self.limits = limits

    # -- writes ---------------------------------------------------------------------------

    def _with_workspace(self, data: Mapping[str, Any] | Event) -> Mapping[str, Any] | Event:
        if self.workspace and isinstance(data, Mapping) and "workspace" not in data:
            return {**data, "workspace": self.workspace}
        return data

    def _prepare_one(self, data: Mapping[str, Any] | Event) -> tuple[Event, Row]:
        event = validate_event(
            self._with_workspace(data), self.registry, strict=self.strict, limits=self.limits
        )
        return event, encode(event)

    def _prepare_many(self, items: Sequence[Mapping[str, Any] | Event]) -> tuple[list[Event], list[Row]]:
        if isinstance(items, Mapping | Event | str | bytes):
            raise AuditValidationError(
                [Problem("", "publish_many takes a list of events; use publish_audit_log for one")]
            )
        events = validate_events(
            [self._with_workspace(d) for d in items],
            self.registry,
            strict=self.strict,
            limits=self.limits,
        )
        return events, [encode(e) for e in events]

    # -- reads ----------------------------------------------------------------------------

    def _decode(self, rows: list[Row]) -> list[Event]:
        registry = self.registry
        return [decode(r, registry) for r in rows]

    def _stream_query(self, event_id: str, workspace: str | None, limit: int | None) -> Query:
        if not isinstance(event_id, str) or not event_id:
            raise AuditValidationError([Problem("event_id", "required: the stream id, e.g. 'monitor:1'")])
        if limit is not None:
            _check_limit(limit)
        return Query(
            workspace=self.workspace if workspace is None else workspace,
            event_id=event_id,
            limit=limit,
        )

    def _list_query(
        self,
        *,
        action: str | Sequence[str] | None,
        actor_id: str | None,
        target_type: str | None,
        target_id: str | None,
        since: TimeArg,
        until: TimeArg,
        workspace: str | None,
        limit: int,
        cursor: str | None,
        event_id: str | None,
        text: str | None,
    ) -> Query:
        _check_limit(limit)
        actions: tuple[str, ...] = ()
        if isinstance(action, str):
            actions = (action,)
        elif action is not None:
            actions = tuple(action)
        return Query(
            workspace=self.workspace if workspace is None else workspace,
            event_id=event_id,
            actions=actions,
            actor_id=actor_id,
            target_type=target_type,
            target_id=target_id,
            since=None if since is None else parse_time(since, field_name="since"),
            until=None if until is None else parse_time(until, field_name="until"),
            text=text or None,
            # One more than asked: tells whether a next page exists without a second query.
            limit=limit + 1,
            after=decode_cursor(cursor) if cursor else None,
        )

    def _page(self, rows: list[Row], limit: int) -> Page:
        more = len(rows) > limit
        rows = rows[:limit]
        events = self._decode(rows)
        next_cursor = encode_cursor(rows[-1].timestamp, rows[-1].uid) if more and rows else None
        return Page(events, next_cursor)


def _check_limit(limit: int) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise AuditValidationError(
            [Problem("limit", f"must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")]
        )
