"""Subscriptions: new events as they are committed, for consumers keeping their own read models.

    for position, event in log.follow(after=checkpoint):
        read_model.apply(event)
        checkpoint = position             # store it with the read model, resume from it

Reads by commit position, on stores of the follow tier
(:class:`~auditbird.stores.capabilities.FollowStore`): positions are durable and gap-free (a
row is visible only once every earlier position is), so a consumer that resumes after its
last position misses nothing and sees nothing twice. Caught up, it polls every
``poll_interval``, or, on a store that can be woken by a commit (PostgreSQL's LISTEN/NOTIFY),
waits for one without querying.

>>> from auditbird import AuditLog
>>> from auditbird.testing import MemoryStore
>>> log = AuditLog(MemoryStore())
>>> _ = log.publish_many([{"id": "m:1", "action": "monitor.down"}, {"id": "m:2", "action": "monitor.up"}])
>>> [(r.position, r.event.id) for r in log.follow(after=1, idle_timeout=0)]
[(2, 'm:2')]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from ._errors import AuditValidationError, Problem
from ._ops import Op, Out, WaitForCommit
from .actions import ActionRegistry
from .codec import decode
from .history import Recorded, query_call
from .query import Query
from .stores.capabilities import FollowStore

__all__ = ["follow_op", "Recorded"]


def follow_op(
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
) -> Op[None]:
    """:class:`Recorded` ``(position, event)`` pairs committed after ``after``, forever, or
    until ``stop`` is set or nothing new arrived for ``idle_timeout`` seconds."""
    if not isinstance(batch, int) or not 1 <= batch <= 10_000:
        raise AuditValidationError([Problem("batch", "must be an integer from 1 to 10000")])
    q = Query(
        workspace=workspace,
        event_id=event_id,
        actions=tuple(actions),
        order="position",
        after_position=after,
        limit=batch,
    )
    idle_since = time.monotonic()
    token: int | None = None  # a commit-waiting store's count of commits seen (PostgreSQL)
    while stop is None or not stop.is_set():
        rows = yield query_call(q, FollowStore)
        for row in rows:
            yield Out(Recorded(row.position, decode(row, registry)))
            q = replace(q, after_position=row.position)
        if len(rows) == batch:
            continue
        now = time.monotonic()
        if rows:
            idle_since = now
        if idle_timeout is not None and now - idle_since >= idle_timeout:
            return  # caught up, and quiet for long enough (idle_timeout=0: as soon as caught up)
        left = None if idle_timeout is None else idle_since + idle_timeout - now
        token = yield WaitForCommit(poll_interval, left, stop, token)
