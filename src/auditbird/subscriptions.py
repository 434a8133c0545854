"""Subscriptions: new events as they are committed, for consumers keeping their own read models.

    for position, event in log.follow(after=checkpoint):
        read_model.apply(event)
        checkpoint = position             # store it with the read model, resume from it

Polls by commit position: on SQLite positions are durable and gap-free (a row is visible only
once every earlier position is), so a consumer that resumes after its last position misses
nothing and sees nothing twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from ._errors import UnsupportedOperation
from .actions import ActionRegistry
from .codec import decode
from .history import Recorded
from .query import Query

__all__ = ["follow", "Recorded"]


def follow(
    store: Any,
    registry: ActionRegistry,
    workspace: str,
    *,
    after: int = 0,
    event_id: str | None = None,
    actions: Sequence[str] = (),
    batch: int = 500,
    poll_interval: float = 0.2,
    idle_timeout: float | None = None,
    stop: threading.Event | None = None,
) -> Iterator[Recorded]:
    """Yield :class:`Recorded` ``(position, event)`` pairs committed after ``after``, forever,
    or until ``stop`` is set or nothing new arrived for ``idle_timeout`` seconds."""
    q = Query(
        workspace=workspace,
        event_id=event_id,
        actions=tuple(actions),
        order="position",
        after_position=after,
        limit=batch,
    )
    idle_since = time.monotonic()
    while stop is None or not stop.is_set():
        rows = store.query(q)
        for row in rows:
            if row.position is None:
                raise UnsupportedOperation(f"{type(store).__name__} keeps no commit positions to follow")
            yield Recorded(row.position, decode(row, registry))
            q = replace(q, after_position=row.position)
        if len(rows) == batch:
            continue
        now = time.monotonic()
        if rows:
            idle_since = now
        if idle_timeout is not None and now - idle_since >= idle_timeout:
            return  # caught up, and quiet for long enough (idle_timeout=0: as soon as caught up)
        if stop is not None:
            stop.wait(poll_interval)
        else:
            time.sleep(poll_interval)
