"""What the sync and async facades share: turning arguments into a Query and rows into a Page."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ._errors import AuditValidationError, Problem, UnsupportedOperation
from .actions import ActionRegistry, default_registry
from .codec import decode, encode
from .event import Event, now_ms
from .query import MAX_LIMIT, Query, decode_cursor, encode_cursor, parse_time
from .stores.base import Row
from .validation import DEFAULT_LIMITS, Limits, gc_paused, validate_event, validate_events

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


@dataclass
class Histogram:
    """Counts per time bucket and action: ``counts[i][action]`` for ``[starts[i], starts[i] + bucket_ms)``."""

    bucket_ms: int
    starts: list[int]
    counts: list[dict[str, int]]

    def total(self) -> int:
        return sum(sum(c.values()) for c in self.counts)


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

    def _scope(self) -> str | None:
        """A log with a workspace writes only there; the default log ("") lets trusted code
        name each event's workspace."""
        return self.workspace or None

    def _prepare_one(self, data: Mapping[str, Any] | Event) -> tuple[Event, Row]:
        event = validate_event(
            data, self.registry, strict=self.strict, limits=self.limits, workspace=self._scope()
        )
        return event, encode(event)

    def _prepare_many(self, items: Sequence[Mapping[str, Any] | Event]) -> tuple[list[Event], list[Row]]:
        if isinstance(items, Mapping | Event | str | bytes):
            raise AuditValidationError(
                [Problem("", "publish_many takes a list of events; use publish_audit_log for one")]
            )
        events = validate_events(
            items, self.registry, strict=self.strict, limits=self.limits, workspace=self._scope()
        )
        rows: list[Row] = []
        problems: list[Problem] = []
        with gc_paused():
            for i, event in enumerate(events):
                try:
                    rows.append(encode(event))
                except AuditValidationError as exc:
                    problems.extend(Problem(p.loc, p.msg, i) for p in exc.problems)
        if problems:
            raise AuditValidationError(problems)
        return events, rows

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
            actions = tuple(dict.fromkeys(action))  # a repeated action must not repeat its events
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

    @staticmethod
    def _check_revision_support(store: object) -> None:
        if not getattr(store, "supports_expected_revision", False):
            raise UnsupportedOperation(
                f"{type(store).__name__} cannot guarantee expected_revision (no atomic "
                "check-and-append); use the SQLite store for event-sourced writers"
            )

    @staticmethod
    def _store_histogram(store: object) -> Any:
        fn = getattr(store, "histogram", None)
        if fn is None:
            raise UnsupportedOperation(f"{type(store).__name__} cannot count events over time")
        return fn

    def _histogram_query(
        self, buckets: int, since: TimeArg, until: TimeArg, filters: dict[str, Any]
    ) -> tuple[Query, int]:
        if not isinstance(buckets, int) or not 1 <= buckets <= 1_000:
            raise AuditValidationError([Problem("buckets", "must be an integer from 1 to 1000")])
        # +1: `until` is exclusive, and an event of this very millisecond belongs in the chart.
        end = now_ms() + 1 if until is None else parse_time(until, field_name="until")
        start = end - 86_400_000 if since is None else parse_time(since, field_name="since")
        if start >= end:
            raise AuditValidationError([Problem("since", "must be before `until`")])
        bucket_ms = max(1, -(-(end - start) // buckets))
        q = self._list_query(
            since=start,
            until=end,
            limit=1,
            cursor=None,
            workspace=filters.pop("workspace", None),
            **{k: filters.get(k) for k in _FILTERS},
        )
        unknown = set(filters) - set(_FILTERS)
        if unknown:
            raise AuditValidationError([Problem(k, "unknown filter") for k in sorted(unknown)])
        return replace(q, limit=None), bucket_ms

    @staticmethod
    def _histogram(q: Query, bucket_ms: int, rows: list[tuple[int, str, int]]) -> Histogram:
        assert q.since is not None and q.until is not None
        n = -(-(q.until - q.since) // bucket_ms)
        starts = [q.since + i * bucket_ms for i in range(n)]
        counts: list[dict[str, int]] = [{} for _ in range(n)]
        for bucket, action_name, count in rows:
            i = (bucket - q.since) // bucket_ms if bucket >= q.since else 0
            i = min(max(i, 0), n - 1)
            counts[i][action_name] = counts[i].get(action_name, 0) + count
        return Histogram(bucket_ms, starts, counts)


_FILTERS = ("action", "actor_id", "target_type", "target_id", "event_id", "text")


def _check_limit(limit: int) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise AuditValidationError(
            [Problem("limit", f"must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")]
        )
