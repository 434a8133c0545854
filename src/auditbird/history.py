"""A stream's history, oldest first, page by page: the walk every history and fold shares.

The order depends on what the store declares (:mod:`auditbird.stores.capabilities`):

- :class:`~.stores.capabilities.StreamStore` (SQLite, memory): commit order, keyed by
  ``position``, in constant memory;
- :class:`~.stores.capabilities.ReplayStore` (Tinybird): ``(timestamp, uid)`` ascending,
  which is commit order unless events were published with out-of-order timestamps;
- the base tier only (the service client): newest-first pages, reversed at the end (the
  stream is held in memory once).

>>> from auditbird import AuditLog
>>> from auditbird.testing import MemoryStore
>>> log = AuditLog(MemoryStore())
>>> _ = log.publish_many([{"id": "m:1", "action": "monitor.down", "timestamp": t} for t in (2, 1)])
>>> [e.timestamp for e in log.history("m:1")]          # commit order, not time order
[2, 1]
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal, NamedTuple

from ._errors import AuditValidationError, Problem, UnsupportedOperation
from ._ops import Call, Op, Out, Supports
from .actions import ActionRegistry
from .codec import decode
from .event import Event
from .query import Query
from .row import Row
from .stores.base import Store
from .stores.capabilities import ReplayStore, StreamStore

__all__ = ["Recorded", "StreamWalk", "history_op", "query_call", "PAGE_SIZE"]

PAGE_SIZE = 2_000


class Recorded(NamedTuple):
    """An event with its position in the log's commit order (what ``follow`` yields).

    Positions are durable and gap-free on stores of the follow tier: a consumer stores the
    last one it handled and resumes with ``follow(after=position)``.

    >>> Recorded(7, None).position
    7
    """

    position: int | None
    event: Event


def query_call(q: Query, tier: type = Store) -> Call:
    """The step that runs ``q`` on a store declaring ``tier``."""
    return Call(tier, lambda store: store.query(q))


def check_event_id(event_id: Any) -> None:
    """Raise :class:`AuditValidationError` unless ``event_id`` names a stream."""
    if not isinstance(event_id, str) or not event_id:
        raise AuditValidationError([Problem("event_id", "required: the stream id, e.g. 'monitor:1'")])


class StreamWalk:
    """The rows of one stream oldest first, one page per :meth:`next_page` (``[]`` when done).

    ``until`` (exclusive, ms) drops later timestamps; ``after_position`` (stream tier only)
    starts after a commit position, e.g. a snapshot's.
    """

    def __init__(
        self,
        workspace: str,
        event_id: str,
        *,
        after_position: int | None = None,
        until: int | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        check_event_id(event_id)
        if not isinstance(page_size, int) or page_size < 1:
            raise AuditValidationError([Problem("page_size", "must be a positive integer")])
        self.base = Query(workspace=workspace, event_id=event_id, until=until, limit=page_size)
        self.after_position = after_position
        self.after: tuple[int, str] | None = None
        self.mode: Literal["position", "asc", "desc"] | None = None
        self.done = False

    def next_page(self) -> Op[list[Row]]:
        """The next page of rows (an operation: ``rows = yield from walk.next_page()``)."""
        if self.mode is None:
            if (yield Supports(StreamStore)):
                self.mode = "position"
            elif self.after_position is not None:
                raise UnsupportedOperation("only stores of the stream tier can start a history at a position")
            else:
                self.mode = "asc" if (yield Supports(ReplayStore)) else "desc"
        if self.done:
            return []
        size = self.base.limit or PAGE_SIZE
        if self.mode == "position":
            rows: list[Row] = yield query_call(
                replace(self.base, order="position", after_position=self.after_position), StreamStore
            )
            if rows and rows[-1].position is None:  # a store that ignored the order: never loop
                raise UnsupportedOperation("a stream store returned rows without positions")
            if rows:
                self.after_position = rows[-1].position
        elif self.mode == "asc":
            rows = yield query_call(replace(self.base, order="asc", after=self.after), ReplayStore)
            if rows:
                self.after = (rows[-1].timestamp, rows[-1].uid)
        else:
            rows = yield from self._all_newest_first()
            rows.reverse()
            self.done = True
            return rows
        if len(rows) < size:
            self.done = True
        return rows

    def _all_newest_first(self) -> Op[list[Row]]:
        out: list[Row] = []
        after: tuple[int, str] | None = None
        size = self.base.limit or PAGE_SIZE
        while True:
            rows: list[Row] = yield query_call(replace(self.base, order="desc", after=after))
            out.extend(rows)
            if len(rows) < size:
                return out
            after = (rows[-1].timestamp, rows[-1].uid)


def history_op(
    registry: ActionRegistry,
    workspace: str,
    event_id: str,
    *,
    after_revision: int | None = None,
    as_of: int | None = None,
    page_size: int = PAGE_SIZE,
) -> Op[None]:
    """Typed events of ``stream`` oldest first. ``after_revision=n`` skips the first ``n``
    (revisions count every event of the stream); ``as_of`` (ms, inclusive) keeps only events
    that had happened by then."""
    check_event_id(event_id)
    skip = after_revision or 0
    if not isinstance(skip, int) or skip < 0:
        raise AuditValidationError([Problem("after_revision", "must be an integer >= 0")])
    # Skipping counts the unfiltered stream, so `as_of` is then applied here, not by the store.
    until = None if as_of is None or skip else as_of + 1
    walk = StreamWalk(workspace, event_id, until=until, page_size=page_size)
    while rows := (yield from walk.next_page()):
        for row in rows:
            if skip:
                skip -= 1
            elif as_of is None or row.timestamp <= as_of:
                yield Out(decode(row, registry))
