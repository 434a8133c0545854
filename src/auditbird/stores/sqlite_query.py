"""SELECTs for the SQLite store: a :class:`Query` in, parameterised SQL out.

Values are always bound, never formatted in; only fixed fragments are.
"""

from __future__ import annotations

from dataclasses import replace

from ..query import Query

__all__ = [
    "build_select",
    "build_recent_text_select",
    "where_clause",
    "uses_text_index",
    "COLUMNS_SQL",
    "TRIGRAM",
]

# The trigram index (FTS5, migration 5) finds the candidates of a `text` search; each is then
# checked with the exact rule (LIKE: a substring, ASCII letters in either case, every other
# character exactly). The index folds case more widely than that rule, so it finds a superset,
# never fewer.
#
# Which searches the index serves (checked by tests/test_sqlite_text_plan.py, timed by
# bench/text_search.py on 1,000,000 events):
# - a text of 3 characters or more, alone or with an action, actor, target type or time range:
#   the index drives (its candidates, looked up by rowid, then sorted). The target type is then
#   checked on the candidate's own `targets` JSON, the rule the audit_target rows are written by.
# - with `event_id` or `target_id` (one stream's or one target's events, usually few), their
#   own index drives and each row is checked with LIKE: no index look-up to pay for.
# - a text of 1 or 2 characters holds no trigram: it walks the time index (or the filter's)
#   newest first and stops when the page is full. Such a text is in most events, so that is a
#   few hundred rows; a short text that is in almost none reads the whole workspace (measured
#   in bench/text_search.py; decided: a one- or two-letter search for a rare thing is rare).
TRIGRAM = 3

# The index is asked for the events holding the RAREST few trigrams of the text (not all of
# them: a trigram in most events, such as `"re` of `"region"`, costs the look-up a pass over
# most of the index while narrowing nothing). How rare each is, is counted by the index itself
# up to _GRAM_COUNT_CAP (a bounded read: 1-3 ms at the cap on 1,000,000 events), for at most
# _GRAMS_PROBED of them, spread over the text.
_GRAMS_USED = 3
_GRAMS_PROBED = 8
_GRAM_COUNT_CAP = 10_000

COLUMNS_SQL = (
    "a.uid, a.workspace, a.id, a.action, a.actor, a.targets, a.metadata, a.timestamp, a.version, a.position"
)

# Does one of the event's targets have this type? The same rule as the audit_target rows
# (stores/sqlite.py): the type is `type`, else the seed's `name`, else "".
_TARGET_TYPE_IN_JSON = (
    "EXISTS (SELECT 1 FROM json_each(a.targets) AS j WHERE COALESCE(NULLIF(json_extract(j.value, "
    "'$.type'), ''), NULLIF(json_extract(j.value, '$.name'), ''), '') = ?)"
)


def uses_text_index(q: Query, text_index: bool) -> bool:
    """Whether the trigram index drives this query's read (see the comment above)."""
    return (
        text_index
        and q.text is not None
        and len(q.text) >= TRIGRAM
        and q.event_id is None
        and q.target_id is None
        and q.uid is None
    )


def where_clause(q: Query, *, text_index: bool = False) -> tuple[str, list[str], list[object]]:
    """FROM and WHERE of a query: values are always bound, never formatted in.

    ``text_index``: the file has the trigram index (``audit_text``) for ``text`` searches."""
    indexed_text = uses_text_index(q, text_index)
    # With the index driving, a target type is checked on the row itself (no join: the
    # target rows have no index by position to look a candidate up with).
    by_target = not indexed_text and (q.target_type is not None or q.target_id is not None)
    k = "t" if by_target else "a"  # the table whose (timestamp, uid) index drives the order
    source = (
        "audit_target AS t JOIN audit_log AS a ON a.position = t.position" if by_target else "audit_log AS a"
    )
    # With an indexed text search the index's matches drive the read (rowid look-ups, then a
    # sort of the matches); `+` keeps SQLite from scanning the workspace's time index instead.
    where = [f"+{k}.workspace = ?" if indexed_text else f"{k}.workspace = ?"]
    params: list[object] = [q.workspace]
    if q.event_id is not None:
        where.append("a.id = ?")
        params.append(q.event_id)
    if q.actions:
        where.append(f"{'+' if indexed_text else ''}a.action IN ({', '.join('?' * len(q.actions))})")
        params.extend(q.actions)
    if q.actor_id is not None:
        where.append(f"{'+' if indexed_text else ''}a.actor_id = ?")
        params.append(q.actor_id)
    if q.target_type is not None:
        where.append(_TARGET_TYPE_IN_JSON if indexed_text else "t.type = ?")
        params.append(q.target_type)
    if q.target_id is not None:
        where.append("t.target_id = ?")
        params.append(q.target_id)
    if q.since is not None:
        where.append(f"{'+' if indexed_text else ''}{k}.timestamp >= ?")
        params.append(q.since)
    if q.until is not None:
        where.append(f"{'+' if indexed_text else ''}{k}.timestamp < ?")
        params.append(q.until)
    if q.uid is not None:
        where.append("a.uid = ?")
        params.append(q.uid)
    if q.text:
        if indexed_text:
            grams = _probed_trigrams(q.text)
            rarest = _rarest_grams_sql(len(grams))
            where.append(f"a.position IN (SELECT rowid FROM audit_text WHERE audit_text MATCH ({rarest}))")  # noqa: S608 - fixed fragments
            params.extend(grams)
        pattern = "%" + q.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(a.id LIKE ? ESCAPE '\\' OR a.metadata LIKE ? ESCAPE '\\')")
        params.extend([pattern, pattern])
    return source, where, params


def _probed_trigrams(text: str) -> list[str]:
    """Up to ``_GRAMS_PROBED`` distinct trigrams of ``text``, spread from its first to its last,
    each an FTS5 string (quoted): every one is in each event holding ``text``."""
    grams = list(dict.fromkeys(text[i : i + TRIGRAM] for i in range(len(text) - TRIGRAM + 1)))
    if len(grams) > _GRAMS_PROBED:
        step = (len(grams) - 1) / (_GRAMS_PROBED - 1)
        grams = list(dict.fromkeys(grams[round(i * step)] for i in range(_GRAMS_PROBED)))
    return ['"' + gram.replace('"', '""') + '"' for gram in grams]


def _rarest_grams_sql(count: int) -> str:
    """A scalar subquery: the FTS5 query ``g1 AND g2 ...`` of the rarest of ``count`` bound
    trigrams, each counted by the index up to the cap: the rarest one, and up to
    ``_GRAMS_USED - 1`` more that are under the cap too (a common one narrows nothing and costs
    a pass over its postings); when even the rarest is over the cap, all of them (the text is
    common, and only their intersection narrows it). Computed once per statement (it does not
    depend on the row)."""
    values = ", ".join(["(?)"] * count)
    return (
        "SELECT group_concat(g, ' AND ') FROM (SELECT g, n, row_number() OVER (ORDER BY n) AS r, "  # noqa: S608 - fixed fragments
        "min(n) OVER () AS lo "
        "FROM (SELECT column1 AS g, (SELECT count(*) FROM (SELECT 1 FROM audit_text WHERE audit_text "
        f"MATCH column1 LIMIT {_GRAM_COUNT_CAP})) AS n FROM (VALUES {values}))) "
        f"WHERE r = 1 OR (r <= {_GRAMS_USED} AND n < {_GRAM_COUNT_CAP}) OR lo >= {_GRAM_COUNT_CAP}"
    )


def build_select(q: Query, *, text_index: bool = False) -> tuple[str, list[object]]:
    """The parameterised SELECT for a query, in the query's order."""
    if len(q.actions) > 1 and q.order != "position" and q.limit is not None:
        return _union_by_action(q, text_index)
    if uses_text_index(q, text_index) and q.limit is not None and q.order != "position":
        return _text_select(q)
    return _select(q, where_clause(q, text_index=text_index))


# Below this many events matching the other filters, a text search reads them all through the
# filters' own index and checks each (a few ms), rather than asking the trigram index, which
# would gather and sort every event holding the text only to keep those few.
_NARROW_FILTER = 2_000


def _text_select(q: Query) -> tuple[str, list[object]]:
    """An indexed text search as two arms, of which exactly one reads rows: the other filters'
    index when they match under ``_NARROW_FILTER`` events, the trigram index otherwise. The
    choice is a condition on no row (a count up to the bound, over the filters' index), which
    SQLite evaluates once, before either arm's loop."""
    count_source, count_where, count_params = where_clause(replace(q, text=None))
    count = (
        f"(SELECT count(*) FROM (SELECT 1 FROM {count_source} WHERE {' AND '.join(count_where)} "  # noqa: S608 - fixed fragments
        f"LIMIT {_NARROW_FILTER}))"
    )
    # The condition is in each arm's LIMIT (0 for the arm not taken): SQLite evaluates a LIMIT
    # once, before the loop, and runs no loop at all for 0 (a WHERE term would be checked per row).
    narrow_sql, narrow_params = _select(
        q, where_clause(q), f"CASE WHEN {count} < {_NARROW_FILTER} THEN ? ELSE 0 END", count_params
    )
    wide_sql, wide_params = _select(
        q,
        where_clause(q, text_index=True),
        f"CASE WHEN {count} < {_NARROW_FILTER} THEN 0 ELSE ? END",
        count_params,
    )
    direction = "DESC" if q.order == "desc" else "ASC"
    sql = (
        f"SELECT * FROM ({narrow_sql}) UNION ALL SELECT * FROM ({wide_sql}) "  # noqa: S608 - fixed fragments
        f"ORDER BY timestamp {direction}, uid {direction} LIMIT ?"
    )
    return sql, [*narrow_params, *wide_params, q.limit]


def _select(
    q: Query,
    clause: tuple[str, list[str], list[object]],
    limit: str = "?",
    limit_params: list[object] | None = None,
) -> tuple[str, list[object]]:
    """SELECT ... FROM/WHERE ``clause``, in the query's order; ``limit`` is the LIMIT
    expression (its ``?`` is the query's limit, after ``limit_params``)."""
    source, where, params = clause
    k = "t" if source.startswith("audit_target") else "a"
    if q.order == "position":
        if q.after_position is not None:
            where.append("a.position > ?")
            params.append(q.after_position)
        order = "a.position ASC"
    else:
        direction = "DESC" if q.order == "desc" else "ASC"
        if q.after is not None:
            where.append(f"({k}.timestamp, {k}.uid) {'<' if direction == 'DESC' else '>'} (?, ?)")
            params.extend(q.after)
        order = f"{k}.timestamp {direction}, {k}.uid {direction}"
    # One target row per (type, id): matching on only one of them can meet an event twice.
    distinct = "DISTINCT " if k == "t" and (q.target_type is None or q.target_id is None) else ""
    sql = f"SELECT {distinct}{COLUMNS_SQL} FROM {source} WHERE {' AND '.join(where)} ORDER BY {order}"  # noqa: S608 - only fixed fragments are formatted in
    if q.limit is not None:
        sql += f" LIMIT {limit}"
        params.extend([*(limit_params or []), q.limit])
    return sql, params


def build_recent_text_select(q: Query, window: int) -> tuple[str, list[object]]:
    """A text search over only the newest ``window`` rows the other filters match.

    When it finds ``q.limit`` rows they are the answer (every row outside the window comes
    later in the order): a word in many events is found in the first few rows, where the
    index would have to gather and sort all its matches. Else the indexed query runs."""
    assert q.text is not None and q.limit is not None and q.order != "position"
    inner, params = build_select(replace(q, text=None, limit=window))
    pattern = "%" + q.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    direction = "DESC" if q.order == "desc" else "ASC"
    sql = (
        f"SELECT * FROM ({inner}) WHERE (id LIKE ? ESCAPE '\\' OR metadata LIKE ? ESCAPE '\\') "  # noqa: S608 - fixed fragments
        f"ORDER BY timestamp {direction}, uid {direction} LIMIT ?"
    )
    return sql, [*params, pattern, pattern, q.limit]


def _union_by_action(q: Query, text_index: bool) -> tuple[str, list[object]]:
    """Several actions: one indexed, limited SELECT per action, merged. ``action IN (...)``
    would sort every matching row of the log to find the newest page."""
    arms, params = [], []
    for name in q.actions:
        sql, arm_params = build_select(replace(q, actions=(name,)), text_index=text_index)
        arms.append(f"SELECT * FROM ({sql})")  # noqa: S608 - built from fixed fragments
        params.extend(arm_params)
    direction = "DESC" if q.order == "desc" else "ASC"
    sql = f"{' UNION ALL '.join(arms)} ORDER BY timestamp {direction}, uid {direction} LIMIT ?"
    params.append(q.limit)
    return sql, params
