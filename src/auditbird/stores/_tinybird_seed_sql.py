"""Reads of a seed datasource (``audit_log__v0``) through the Query API, for what its pipe cannot do.

Every filter of :class:`Query` is a typed template parameter of one SQL query (rendered by
Tinybird, never formatted into the text), with the meaning auditbird's own ``list_audit_log``
pipe gives it: ``text`` is a substring of the id or the metadata, case-insensitive for ASCII
letters only; a target matches when one element has both the type (or the seed's ``name``) and
the id asked for.

The rows have no uid, so the keyset ``(timestamp, uid)`` is applied in two steps: SQL pages by
timestamp, always taking every row of a page's last timestamp (a second query when the page is
full); Python derives the uids, orders each timestamp's rows by uid and drops the rows at or
before the cursor. Pages never split a timestamp, so copies of a row (one uid) are always read
together and returned once.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .._errors import StoreUnavailable
from ..query import MAX_LIMIT, Query
from ._tinybird_errors import AuthenticationError
from ._tinybird_http import Exchange, Protocol, Send
from .base import Row

if TYPE_CHECKING:
    from .tinybird import TinybirdStore

__all__ = ["query_api", "read_seed_sql"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# String parameters travel with an "x" in front (taken off by substring(.., 2)): an empty value,
# such as the system actor's id "", may otherwise read as an undefined parameter.
_FILTERS = """
WHERE 1 = 1
{% if defined(event_id) %} AND id = substring({{String(event_id)}}, 2) {% end %}
{% if defined(actions) %} AND action IN {{Array(actions, 'String')}} {% end %}
{% if defined(actor_id) %} AND JSONExtractString(actor, 'id') = substring({{String(actor_id)}}, 2) {% end %}
{% if defined(target_type) or defined(target_id) %}
  AND arrayExists(t -> 1
  {% if defined(target_type) %}
    AND if(JSONHas(t, 'type'), JSONExtractString(t, 'type'), JSONExtractString(t, 'name'))
        = substring({{String(target_type)}}, 2)
  {% end %}
  {% if defined(target_id) %} AND JSONExtractString(t, 'id') = substring({{String(target_id)}}, 2) {% end %}
  , JSONExtractArrayRaw(ifNull(targets, '[]')))
{% end %}
{% if defined(since) %} AND timestamp >= {{Int64(since)}} {% end %}
{% if defined(until) %} AND timestamp < {{Int64(until)}} {% end %}
{% if defined(text) %}
  AND (positionCaseInsensitive(id, substring({{String(text)}}, 2)) > 0
       OR positionCaseInsensitive(ifNull(metadata, ''), substring({{String(text)}}, 2)) > 0)
{% end %}
{% if defined(ts_from) %} AND timestamp >= {{Int64(ts_from)}} {% end %}
{% if defined(ts_to) %} AND timestamp <= {{Int64(ts_to)}} {% end %}
"""


def query_api(protocol: Protocol, sql: str, params: dict[str, str], what: str) -> Exchange:
    """The ``data`` of ``GET /v0/sql?q=sql&<params>`` (a templated query: ``sql`` starts with %)."""
    url = f"{protocol.host}/v0/sql"
    response = yield from protocol.request(
        what, lambda t: Send("GET", url, {"q": sql, **params}, protocol._headers, None, timeout=t)
    )
    if response.status_code in (401, 403):
        raise AuthenticationError(
            f"{protocol.error(response, '', what)}. The Query API reads the datasource itself: use a "
            f"token with DATASOURCES:READ on {protocol.datasource} (a read token of its pipe is not enough)"
        )
    if response.status_code != 200:
        raise protocol.error(response, f"datasource {protocol.datasource!r} (Query API)", what)
    try:
        data = response.json()["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreUnavailable(f"the Query API at {protocol.host} did not answer JSON rows ({exc})") from exc
    if not isinstance(data, list):
        raise StoreUnavailable(f"the Query API at {protocol.host} did not answer a list of rows")
    return data


def _params(q: Query) -> dict[str, str]:
    params: dict[str, str] = {}
    strings = {
        "event_id": q.event_id,
        "actor_id": q.actor_id,
        "target_type": q.target_type,
        "target_id": q.target_id,
        "text": q.text or None,
    }
    params |= {k: "x" + v for k, v in strings.items() if v is not None}
    if q.actions:
        params["actions"] = ",".join(q.actions)
    if q.since is not None:
        params["since"] = str(q.since)
    if q.until is not None:
        params["until"] = str(q.until)
    return params


def read_seed_sql(store: TinybirdStore, q: Query, convert: Any) -> Exchange:
    """The rows for ``q`` (``convert``: a seed item -> Row with its derived uid)."""
    table = store.tb.datasource
    if not _IDENTIFIER.match(table):
        raise ValueError(f"{table!r} is not a Tinybird datasource name")
    cols = "id, action, actor, targets, metadata, timestamp, version"
    head = f"%\nSELECT {cols} FROM {table}"  # noqa: S608 - a checked identifier; values are parameters
    direction = "DESC" if q.order == "desc" else "ASC"
    page_sql = (
        head + _FILTERS + f"ORDER BY timestamp {direction}\nLIMIT {{{{Int32(page_rows)}}}}\nFORMAT JSON"
    )
    group_sql = head + _FILTERS + "FORMAT JSON"
    base = _params(q)
    what = f"a read of {table} (Query API)"
    desc = q.order == "desc"
    # The timestamp bound of the next page, inclusive: the cursor's timestamp at first.
    bound: int | None = q.after[0] if q.after is not None else None
    out: list[Row] = []
    while True:
        size = MAX_LIMIT if q.limit is None else max(1, min(MAX_LIMIT, q.limit - len(out)))
        params = {**base, "page_rows": str(size)}
        if bound is not None:
            params["ts_to" if desc else "ts_from"] = str(bound)
        items = yield from query_api(store.protocol, page_sql, params, what)
        full = len(items) == size
        if full:  # take every row of the last timestamp, however many
            last = int(items[-1]["timestamp"])
            at_last = {**base, "ts_from": str(last), "ts_to": str(last)}
            group = yield from query_api(store.protocol, group_sql, at_last, what)
            items = [i for i in items if int(i["timestamp"]) != last] + group
        rows: dict[str, Row] = {}
        for item in items:
            row = convert(item)
            rows.setdefault(row.uid, row)
        page = sorted(rows.values(), key=lambda r: (r.timestamp, r.uid), reverse=desc)
        if q.after is not None:
            after = q.after
            page = [
                r for r in page if ((r.timestamp, r.uid) < after) == desc and (r.timestamp, r.uid) != after
            ]
        if q.uid is not None:
            page = [r for r in page if r.uid == q.uid]
        out += page
        if q.limit is not None and len(out) >= q.limit:
            return out[: q.limit]
        if not full:
            return out
        bound = last - 1 if desc else last + 1
