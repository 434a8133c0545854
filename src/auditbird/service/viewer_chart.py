"""``GET /v1/histogram``: the viewer's activity chart, event counts over time by action."""

from __future__ import annotations

from typing import Annotated

from cachetools import TTLCache
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from .._errors import Problem
from ..async_log import AsyncAuditLog
from ..event import now_ms
from ..query import parse_time
from .access import ACCESS_ACTIONS
from .auth import ReaderDep
from .problems import ProblemError
from .reads import Filters, hides_access, json_response, list_filters, restricted
from .state import ServiceState

__all__ = ["router", "oldest"]

router = APIRouter(tags=["viewer"])

# The oldest event's time per (workspace, restriction): found by bisection, fine a minute old.
_OLDEST_TTL_SECONDS = 60.0
_NONE = -1  # cached: the workspace has no event yet


async def oldest(
    log: AsyncAuditLog, restrictions: dict[str, str], cache: TTLCache[tuple[object, ...], int]
) -> int | None:
    """The time of the workspace's oldest event (to a minute), by bisection over indexed reads."""
    key = (log.workspace, tuple(sorted(restrictions.items())))
    found = cache.get(key)
    if found is not None:
        return found if found >= 0 else None
    newest = await log.list(limit=1, **restrictions)
    if not newest.events:
        cache[key] = _NONE
        return None
    lo, hi = 0, newest.events[0].timestamp + 1  # an event exists before hi; none before lo
    while hi - lo > 60_000:
        mid = (lo + hi) // 2
        page = await log.list(until=mid, limit=1, **restrictions)
        if page.events:
            hi = mid
        else:
            lo = mid
    cache[key] = lo
    return lo


def _oldest_cache(request: Request) -> TTLCache[tuple[object, ...], int]:
    found: TTLCache[tuple[object, ...], int] | None = getattr(request.app.state, "viewer_oldest", None)
    if found is None:
        found = request.app.state.viewer_oldest = TTLCache(maxsize=1_000, ttl=_OLDEST_TTL_SECONDS)
    return found


@router.get("/v1/histogram", summary="Event counts over time by action, for the list filters")
async def histogram(
    request: Request,
    who: ReaderDep,
    filters: Annotated[Filters, Depends()],
    buckets: Annotated[int, Query(ge=1, le=500)] = 60,
) -> Response:
    """Without ``since``, the chart starts at the workspace's oldest event (the whole log)."""
    state: ServiceState = request.app.state.auditbird
    restricted(who, filters)
    log = state.reader(who.workspace)
    until_now = filters.values["until"] is None
    end = now_ms() + 1 if until_now else parse_time(filters.values["until"], field_name="until")
    if filters.values["since"] is None:
        first = await oldest(log, who.restrictions(), _oldest_cache(request))
        start = min(first if first is not None else end - 3_600_000, end - 60_000)
    else:
        start = parse_time(filters.values["since"], field_name="since")
    if start >= end:
        raise ProblemError(422, "`since` must be before `until`", errors=[Problem("since", "after `until`")])
    # Buckets on multiples of their width: the store counts in epoch-aligned buckets, so a chart
    # that starts mid-bucket would fold two of them into its first bar.
    width = -(-(end - start) // buckets)
    start -= start % width
    buckets = -(-(end - start) // width)
    end = start + buckets * width
    values = list_filters(filters)
    hist = await log.histogram(buckets=buckets, since=start, until=end, **values)
    hide = hides_access(values)
    counts = [{a: n for a, n in c.items() if not (hide and a in ACCESS_ACTIONS)} for c in hist.counts]
    return json_response(
        {"bucket_ms": hist.bucket_ms, "starts": hist.starts, "counts": counts, "until_now": until_now}
    )
