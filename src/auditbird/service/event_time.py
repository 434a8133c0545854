"""How far ahead of the server's clock an event sent to the service may be dated.

Retention ages an event by its ``timestamp`` (the time it happened, chosen by the writer): the
store records no commit time. An event dated years ahead would outlive every retention period,
so the service refuses timestamps more than :data:`MAX_AHEAD_MS` ahead of its own clock (room for
clients' clock skew and batching). Past timestamps are accepted (backfilling history is what they
are for): an event older than the workspace's retention period is removed by the next run, and
that run's ``retention.apply`` event lists it (docs/provable-history.md). The library itself
trusts its caller (the operator) within 1970..9999.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._errors import Problem
from ..event import now_ms
from .problems import ProblemError

__all__ = ["MAX_AHEAD_MS", "refuse_future_timestamps"]

MAX_AHEAD_MS = 3_600_000  # one hour


def refuse_future_timestamps(items: Sequence[Any], now: int | None = None) -> None:
    """Raise a 422 :class:`ProblemError` naming each item dated more than an hour ahead."""
    now = now_ms() if now is None else now
    limit = now + MAX_AHEAD_MS
    problems = [
        Problem(
            "timestamp",
            f"{item['timestamp']} is {(item['timestamp'] - now) // 60_000} minutes ahead of the "
            "server's clock (at most 60 are accepted: retention ages events by it); send the time "
            "the event happened, in milliseconds since 1970, or leave it out for now",
            i,
        )
        for i, item in enumerate(items)
        if isinstance(item, dict) and type(item.get("timestamp")) is int and item["timestamp"] > limit
    ]
    if problems:
        raise ProblemError(422, "events dated in the future; nothing was stored", errors=problems)
