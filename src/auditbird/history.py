"""A stream's history, oldest first, in constant memory: keyset pages in commit order.

On stores that keep a commit order (SQLite: ``position``), history is the order events were
committed. Stores without one (Tinybird) fall back to ``(timestamp, uid)`` ascending, which
is the same order unless events were published with out-of-order timestamps.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, NamedTuple

from ._errors import AuditValidationError, Problem, UnsupportedOperation
from .actions import ActionRegistry
from .codec import decode
from .event import Event
from .query import Query
from .stores.base import Row

__all__ = ["Recorded", "stream_rows", "iter_history"]

PAGE_SIZE = 2_000


class Recorded(NamedTuple):
    """An event with its position in the log's commit order (what ``follow`` yields).

    Positions are durable and gap-free on SQLite: a consumer stores the last one it handled
    and resumes with ``follow(after=position)``. ``position`` is None on stores without one.
    """

    position: int | None
    event: Event


def stream_rows(
    store: Any,
    workspace: str,
    stream: str,
    *,
    after_position: int | None = None,
    until: int | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[Row]:
    """Rows of one stream oldest first; ``until`` (exclusive, ms) drops later timestamps."""
    base = Query(workspace=workspace, event_id=stream, until=until, limit=page_size, order="position")
    q = replace(base, after_position=after_position)
    try:
        rows = store.query(q)
    except UnsupportedOperation:
        if after_position is not None:
            raise
        yield from _stream_rows_by_time(store, replace(base, order="asc"))
        return
    while rows:
        yield from rows
        if len(rows) < page_size:
            return
        last = rows[-1].position
        if last is None:  # a store that ignored order="position": do not loop forever
            raise UnsupportedOperation(f"{type(store).__name__} returned rows without positions")
        rows = store.query(replace(q, after_position=last))


def _stream_rows_by_time(store: Any, q: Query) -> Iterator[Row]:
    while True:
        rows = store.query(q)
        yield from rows
        if len(rows) < (q.limit or 0) or not rows:
            return
        q = replace(q, after=(rows[-1].timestamp, rows[-1].uid))


def iter_history(
    store: Any,
    registry: ActionRegistry,
    workspace: str,
    stream: str,
    *,
    after_revision: int | None = None,
    after_position: int | None = None,
    as_of: int | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[Event]:
    """Typed events of ``stream`` oldest first. ``after_revision=n`` skips the first ``n``;
    ``as_of`` (ms, inclusive) keeps only events that had happened by then."""
    if not isinstance(stream, str) or not stream:
        raise AuditValidationError([Problem("event_id", "required: the stream id, e.g. 'monitor:1'")])
    if after_revision is not None:
        if after_revision < 0:
            raise AuditValidationError([Problem("after_revision", "must be >= 0")])
        if after_revision > 0:
            # Revisions count every event of the stream, so skip on the unfiltered stream.
            rows = stream_rows(store, workspace, stream, after_position=after_position, page_size=page_size)
            nth = next(itertools.islice(rows, after_revision - 1, None), None)
            if nth is None:
                return
            if nth.position is None:  # no positions to restart from: go on with this walk
                for row in rows:
                    if as_of is None or row.timestamp <= as_of:
                        yield decode(row, registry)
                return
            after_position = nth.position
    until = None if as_of is None else as_of + 1
    for row in stream_rows(
        store, workspace, stream, after_position=after_position, until=until, page_size=page_size
    ):
        yield decode(row, registry)
