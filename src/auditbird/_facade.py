"""What the sync and async facades share: every operation, written once.

:class:`LogCore` turns arguments into operations (:mod:`auditbird._ops`): validation,
defaults, codecs and cursors happen here, and the store calls are *steps* that
:class:`~auditbird.AuditLog` runs on a blocking store and :class:`~auditbird.AsyncAuditLog`
awaits on an async one. The list filters are declared once, as :class:`Filters`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypedDict

from ._errors import AuditValidationError, NotFound, Problem
from ._ops import Call, Op, Out
from .actions import ActionRegistry, default_registry
from .codec import decode, encode, encode_many
from .erasure import SubjectKeyStore, keys_for_store
from .erasure.seal import refuse_lookalikes, seal_row
from .event import Event, now_ms
from .history import query_call
from .query import MAX_LIMIT, Query, decode_cursor, encode_cursor, parse_time
from .reserved import refuse_reserved
from .row import Row
from .sourcing import SourcingCore
from .stores.base import Store
from .stores.capabilities import (
    AsyncStoredCopyStore,
    HistogramStore,
    StoredCopyStore,
    StreamStore,
    supports,
)
from .validation import DEFAULT_LIMITS, Limits, gc_paused, validate_event, validate_events

__all__ = ["Page", "Histogram", "Filters", "TimeArg", "LogCore"]

TimeArg = int | str | datetime | None


class Filters(TypedDict, total=False):
    """The filters of :meth:`AuditLog.list` (and ``iter_events``, ``histogram``), declared once.

    Every filter is ANDed; ``action`` matches any of several. ``since`` is inclusive and
    ``until`` exclusive (ms since epoch, ``15m``/``1h``/``7d`` ago, ISO 8601 or a datetime);
    ``text`` is a substring of the subject id or the metadata (ASCII letters match either
    case); ``workspace`` defaults to the log's.
    """

    action: str | Sequence[str] | None
    actor_id: str | None
    target_type: str | None
    target_id: str | None
    event_id: str | None
    text: str | None
    since: TimeArg
    until: TimeArg
    workspace: str | None


FILTER_NAMES = frozenset(Filters.__annotations__)


@dataclass
class Page:
    """One page of :meth:`AuditLog.list`: the events and the cursor of the next page (or None).

    >>> page = Page([], None)
    >>> len(page), list(page), page.next_cursor
    (0, [], None)
    """

    events: list[Event]
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


@dataclass
class Histogram:
    """Counts per time bucket and action: ``counts[i][action]`` for ``[starts[i], starts[i] + bucket_ms)``.

    >>> Histogram(1000, [0, 1000], [{"a.b": 2}, {"a.b": 1, "a.c": 4}]).total()
    7
    """

    bucket_ms: int
    starts: list[int]
    counts: list[dict[str, int]]

    def total(self) -> int:
        """All events counted, over every bucket and action."""
        return sum(sum(c.values()) for c in self.counts)


class LogCore(SourcingCore):
    """Validation, defaults, codecs and cursors: everything a store does not know.

    Each ``_*_op`` method returns an operation; the facades only drive them.
    """

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

    # -- erasure (auditbird.erasure): personal values are sealed here, after encoding ------------

    # The subject keys personal values are sealed under (None: stored as given, on a store
    # that keeps no subject keys). Set by `_attach_subject_keys` from the store.
    _subject_keys: SubjectKeyStore | None = None

    def _attach_subject_keys(self, store: Any) -> None:
        self._subject_keys = keys_for_store(store)

    def _sealed(self, event: Event, row: Row) -> Row:
        keys = self._subject_keys
        if keys is None:
            refuse_lookalikes(row)  # reads open `$erasable:` strings whatever the store
            return row
        return seal_row(event, row, keys)

    # ---------------------------------------------------------------------------------------

    def _prepare_one(self, data: Mapping[str, Any] | Event) -> tuple[Event, Row]:
        event = validate_event(
            data, self.registry, strict=self.strict, limits=self.limits, workspace=self._scope()
        )
        refuse_reserved((event.action,))  # the library's own records (auditbird.reserved)
        return event, self._sealed(event, encode(event))

    def _prepare_many(self, items: Sequence[Mapping[str, Any] | Event]) -> tuple[list[Event], list[Row]]:
        if isinstance(items, Mapping | Event | str | bytes):
            raise AuditValidationError(
                [Problem("", "publish_many takes a list of events; use publish_audit_log for one")]
            )
        # One pause of the cyclic GC over validation and encoding: resumed in between, it would
        # scan the whole batch of new (all live) events once more for nothing.
        with gc_paused():
            events = validate_events(
                items, self.registry, strict=self.strict, limits=self.limits, workspace=self._scope()
            )
            refuse_reserved((e.action for e in events), batch=True)
            rows = encode_many(events)
            problems: list[Problem] = []
            for i, event in enumerate(events):
                try:
                    rows[i] = self._sealed(event, rows[i])
                except AuditValidationError as exc:
                    problems.extend(Problem(p.loc, p.msg, i) for p in exc.problems)
            if problems:
                raise AuditValidationError(problems)
        return events, rows

    @staticmethod
    def _append_call(rows: list[Row], expected_revision: int | None) -> Call:
        """Append ``rows``; the step's answer is the store's ``{index: row as stored}`` for the
        rows not stored as given, or None from a store that cannot tell (Tinybird)."""
        if expected_revision is None:
            return Call(Store, lambda store: _append(store, rows))
        return Call(StreamStore, lambda store: _append(store, rows, expected_revision=expected_revision))

    def _publish_op(self, event: Mapping[str, Any] | Event, expected_revision: int | None) -> Op[Event]:
        submitted, row = self._prepare_one(event)
        kept = yield self._append_call([row], expected_revision)
        if not kept:  # the common path: stored as given
            return submitted
        return self._as_stored([submitted], [row], kept)[0]

    def _publish_prepared_op(
        self, submitted: list[Event], rows: list[Row], expected_revision: int | None
    ) -> Op[list[Event]]:
        """Append rows made by ``_prepare_one``/``_prepare_many`` (elsewhere: on a thread)."""
        kept = yield self._append_call(rows, expected_revision)
        if not kept:
            return submitted
        return self._as_stored(submitted, rows, kept)

    def _publish_many_op(
        self, events: Sequence[Mapping[str, Any] | Event], expected_revision: int | None
    ) -> Op[list[Event]]:
        submitted, rows = self._prepare_many(events)
        kept = yield self._append_call(rows, expected_revision)
        if not kept:
            return submitted
        return self._as_stored(submitted, rows, kept)

    def _as_stored(self, events: list[Event], rows: list[Row], kept: Mapping[int, Row]) -> list[Event]:
        """``events`` with each one the store did not keep as given replaced by what it keeps:
        the first copy of a re-published uid, or the workspace the service filed it in."""
        out = list(events)
        for i, stored in kept.items():
            given = rows[i]
            if stored[:9] == given[:9]:
                continue  # the same event again: what was submitted is what is stored
            if stored[:9] == given._replace(workspace=stored.workspace)[:9]:
                out[i] = events[i].model_copy(update={"workspace": stored.workspace})
            else:
                out[i] = decode(stored, self.registry)
        return out

    def _revision_op(self, event_id: str, workspace: str | None) -> Op[int]:
        ws = self._ws(workspace)
        count = yield Call(StreamStore, lambda store: store.revision(ws, event_id))
        return int(count)

    # -- reads ----------------------------------------------------------------------------

    def _ws(self, workspace: str | None) -> str:
        return self.workspace if workspace is None else workspace

    def _decode(self, rows: list[Row]) -> list[Event]:
        registry = self.registry
        return [decode(r, registry) for r in rows]

    def _stream_op(self, event_id: str, workspace: str | None, limit: int | None) -> Op[list[Event]]:
        if not isinstance(event_id, str) or not event_id:
            raise AuditValidationError([Problem("event_id", "required: the stream id, e.g. 'monitor:1'")])
        if limit is not None:
            _check_limit(limit)
        rows = yield query_call(Query(workspace=self._ws(workspace), event_id=event_id, limit=limit))
        return self._decode(rows)

    def _list_query(self, limit: int, cursor: str | None, filters: Filters) -> Query:
        _check_limit(limit)
        unknown = set(filters) - FILTER_NAMES
        if unknown:
            raise AuditValidationError(
                [
                    Problem(k, f"unknown filter; use one of {', '.join(sorted(FILTER_NAMES))}")
                    for k in sorted(unknown)
                ]
            )
        action = filters.get("action")
        actions: tuple[str, ...] = ()
        if isinstance(action, str):
            actions = (action,)
        elif action is not None:
            actions = tuple(dict.fromkeys(action))  # a repeated action must not repeat its events
        since, until = filters.get("since"), filters.get("until")
        return Query(
            workspace=self._ws(filters.get("workspace")),
            event_id=filters.get("event_id"),
            actions=actions,
            actor_id=filters.get("actor_id"),
            target_type=filters.get("target_type"),
            target_id=filters.get("target_id"),
            since=None if since is None else parse_time(since, field_name="since"),
            until=None if until is None else parse_time(until, field_name="until"),
            text=filters.get("text") or None,
            # One more than asked: tells whether a next page exists without a second query.
            limit=limit + 1,
            after=decode_cursor(cursor) if cursor else None,
        )

    def _list_op(self, limit: int, cursor: str | None, filters: Filters) -> Op[Page]:
        rows = yield query_call(self._list_query(limit, cursor, filters))
        return self._page(rows, limit)

    def _iter_op(self, page_size: int, cursor: str | None, filters: Filters) -> Op[None]:
        while True:
            page = yield from self._list_op(page_size, cursor, filters)
            for event in page.events:
                yield Out(event)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def _get_op(self, uid: str, workspace: str | None, missing_ok: bool) -> Op[Event | None]:
        if not isinstance(uid, str) or not uid:
            raise AuditValidationError([Problem("uid", "required: the event's uid")])
        rows = yield query_call(Query(workspace=self._ws(workspace), uid=uid, limit=1))
        if rows:
            return self._decode(rows)[0]
        if missing_ok:
            return None
        raise NotFound(
            f"no event {uid!r} in workspace {self._ws(workspace)!r}; check the uid and the workspace"
        )

    def _page(self, rows: list[Row], limit: int) -> Page:
        more = len(rows) > limit
        rows = rows[:limit]
        events = self._decode(rows)
        next_cursor = encode_cursor(rows[-1].timestamp, rows[-1].uid) if more and rows else None
        return Page(events, next_cursor)

    def _histogram_op(self, buckets: int, filters: Filters) -> Op[Histogram]:
        if not isinstance(buckets, int) or isinstance(buckets, bool) or not 1 <= buckets <= 1_000:
            raise AuditValidationError([Problem("buckets", "must be an integer from 1 to 1000")])
        since, until = filters.get("since"), filters.get("until")
        # +1: `until` is exclusive, and an event of this very millisecond belongs in the chart.
        end = now_ms() + 1 if until is None else parse_time(until, field_name="until")
        start = end - 86_400_000 if since is None else parse_time(since, field_name="since")
        if start >= end:
            raise AuditValidationError([Problem("since", "must be before `until`")])
        bucket_ms = max(1, -(-(end - start) // buckets))
        q = replace(self._list_query(1, None, {**filters, "since": start, "until": end}), limit=None)
        rows = yield Call(HistogramStore, lambda store: store.histogram(q, bucket_ms))
        return _histogram(start, end, bucket_ms, rows)


def _append(store: Any, rows: list[Row], **options: int) -> Any:
    """``store.append``; its answer counts only from a store that declares the stored-copy
    tier (declared, not discovered: another store's return value promises nothing)."""
    answer = store.append(rows, **options)
    if supports(store, StoredCopyStore) or supports(store, AsyncStoredCopyStore):
        return answer
    if inspect.isawaitable(answer):
        return _nothing_after(answer)
    return None


async def _nothing_after(awaitable: Awaitable[Any]) -> None:
    await awaitable


def _histogram(start: int, end: int, bucket_ms: int, rows: list[tuple[int, str, int]]) -> Histogram:
    n = -(-(end - start) // bucket_ms)
    starts = [start + i * bucket_ms for i in range(n)]
    counts: list[dict[str, int]] = [{} for _ in range(n)]
    for bucket, action_name, count in rows:
        i = (bucket - start) // bucket_ms if bucket >= start else 0
        i = min(max(i, 0), n - 1)
        counts[i][action_name] = counts[i].get(action_name, 0) + count
    return Histogram(bucket_ms, starts, counts)


def _check_limit(limit: int) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise AuditValidationError(
            [Problem("limit", f"must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")]
        )
