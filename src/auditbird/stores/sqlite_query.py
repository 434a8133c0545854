"""SELECTs for the SQLite store: a :class:`Query` in, parameterised SQL out.

Values are always bound, never formatted in; only fixed fragments are.
"""

from __future__ import annotations

from dataclasses import replace

from ..query import Query

__all__ = [
    "build_select",
    "build_recent_text_select",
    "build_text_arm_select",
    "TEXT_ARMS",
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
#   the newest rows first (SQLiteStore.query), then one of three arms (_text_select): the
#   filters' index when they match few events; the filters' index checked against the trigram
#   index's matches when every trigram is common; else the index's candidates, looked up by
#   rowid, then sorted. The target type is then checked on the candidate's own `targets` JSON,
#   the rule the audit_target rows are written by.
# - with `event_id` or `target_id` (one stream's or one target's events, usually few), their
#   own index drives and each row is checked with LIKE: no index look-up to pay for.
# - a text of 1 or 2 characters holds no trigram: it walks the time index (or the filter's)
#   newest first and stops when the page is full. Such a text is in most events, so that is a
#   few hundred rows; a short text that is in almost none reads the whole workspace (measured
#   in bench/text_search.py, ~1 s per 1,000,000 events; decided: a one- or two-letter search
#   for a rare thing is rare, and no index serves it for free: FTS5's trigram tokenizer has no
#   prefix queries, and a text at the end of the id has no trigram starting with it).
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


def where_clause(
    q: Query, *, text_index: bool = False, match_sql: str | None = None
) -> tuple[str, list[str], list[object]]:
    """FROM and WHERE of a query: values are always bound, never formatted in.

    ``text_index``: the file has the trigram index (``audit_text``) for ``text`` searches.
    ``match_sql``: the FTS5 query's SQL when the statement computes it once for all its arms
    (see :func:`_text_select`); else this clause probes the trigrams itself."""
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
            if match_sql is None:
                grams = _probed_trigrams(q.text)
                match_sql = _rarest_grams_sql(len(grams))
                params.extend(grams)
            where.append(f"a.position IN (SELECT rowid FROM audit_text WHERE audit_text MATCH ({match_sql}))")  # noqa: S608 - fixed fragments
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


def _gram_counts_sql(count: int) -> str:
    """``(g, n)`` for each of ``count`` bound trigrams: the gram and how many events hold it,
    counted by the index up to the cap (a bounded read)."""
    values = ", ".join(["(?)"] * count)
    return (
        "SELECT column1 AS g, (SELECT count(*) FROM (SELECT 1 FROM audit_text WHERE audit_text "  # noqa: S608 - fixed fragments
        f"MATCH column1 LIMIT {_GRAM_COUNT_CAP})) AS n FROM (VALUES {values})"
    )


def _rarest_of_sql(counts: str) -> str:
    """A scalar subquery over ``counts`` (rows ``(g, n)``): the FTS5 query ``g1 AND g2 ...`` of
    the rarest trigram, and up to ``_GRAMS_USED - 1`` more that are under the cap too (a common
    one narrows nothing and costs a pass over its postings); when even the rarest is over the
    cap, all of them (the text is common, and only their intersection narrows it)."""
    return (
        "SELECT group_concat(g, ' AND ') FROM (SELECT g, n, row_number() OVER (ORDER BY n) AS r, "  # noqa: S608 - fixed fragments
        f"min(n) OVER () AS lo FROM ({counts})) "
        f"WHERE r = 1 OR (r <= {_GRAMS_USED} AND n < {_GRAM_COUNT_CAP}) OR lo >= {_GRAM_COUNT_CAP}"
    )


def _rarest_grams_sql(count: int) -> str:
    """:func:`_rarest_of_sql` of ``count`` bound trigrams, counted in place. Computed once per
    statement (it does not depend on the row)."""
    return _rarest_of_sql(_gram_counts_sql(count))


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
    """An indexed text search as three arms, of which exactly one reads rows:

    - *narrow*: the other filters match under ``_NARROW_FILTER`` events: their index drives and
      each row is checked (a few ms);
    - *intersect*: they match more (but under ``_INTERSECT_WALK``), and every probed trigram
      of the text is in over ``_GRAM_COUNT_CAP`` events (the index cannot narrow it much): the
      filters' index drives,
      newest first, and each entry's position is checked against the set of the index's
      matches BEFORE its row is read (the position is in every index), so the walk reads rows
      only for events that hold every trigram, and stops at a full page. Bounded by the
      filters' index entries, never by random row reads of the text's candidates (with a
      filter over 2,000 events matching none of them, the wide arm below read ~100,000 rows);
    - *wide*: else (a trigram under the cap): the index's few candidates, read and sorted.

    The choice is computed once per statement (a MATERIALIZED CTE: the filters' count up to the
    bound, the trigrams' counts up to the cap) and put in each arm's LIMIT (0 for an arm not
    taken): SQLite evaluates a LIMIT once, before the loop, and runs no loop at all for 0."""
    head, params = _text_arm_head(q)
    match = _rarest_of_sql("SELECT g, n FROM text_grams")
    arms = []
    for arm, clause in enumerate(
        (where_clause(q), _intersect_clause(q), where_clause(q, text_index=True, match_sql=match))
    ):
        sql, arm_params = _select(
            q,
            clause,
            f"CASE WHEN (SELECT arm FROM text_arm) = {arm} THEN ? ELSE 0 END",  # noqa: S608
        )
        arms.append(f"SELECT * FROM ({sql})")  # noqa: S608 - fixed fragments
        params.extend(arm_params)
    direction = "DESC" if q.order == "desc" else "ASC"
    sql = f"{head}{' UNION ALL '.join(arms)} ORDER BY timestamp {direction}, uid {direction} LIMIT ?"
    return sql, [*params, q.limit]


TEXT_ARMS = ("narrow", "intersect", "wide")


# The intersect arm walks the filters' index entries newest first (~0.5 us each with the set
# check, on 1,000,000 events), stopping at a full page; at worst (no candidate among them) it
# walks them all. It is taken only while the filters match under _INTERSECT_WALK events, so
# that worst case stays near 50 ms; past it the wide arm reads the text's candidates. (Not
# decided by the candidates' count: for common trigrams whose intersection is sparse, counting
# it reads every posting, ~100 ms on 1,000,000 events.)
_INTERSECT_WALK = 100_000


def _text_arm_head(q: Query) -> tuple[str, list[object]]:
    """``WITH text_grams, text_arm``: the trigrams' counts and the arm (0, 1, 2 of
    ``TEXT_ARMS``), each computed once per statement and only as far as the choice needs: the
    filters counted up to the narrow bound; if over it and every trigram is common, the filters
    again up to ``_INTERSECT_WALK`` (a walk of their index alone: ~0.05 us an entry, so at
    most ~7 ms on top of the wide arm's cost when the filters match more)."""
    assert q.text is not None
    grams = _probed_trigrams(q.text)
    count_source, count_where, count_params = where_clause(replace(q, text=None))
    filters = f"SELECT 1 FROM {count_source} WHERE {' AND '.join(count_where)}"  # noqa: S608 - fixed fragments
    head = (
        f"WITH text_grams AS MATERIALIZED ({_gram_counts_sql(len(grams))}), "  # noqa: S608 - fixed fragments
        f"text_arm AS MATERIALIZED (SELECT CASE "
        f"WHEN (SELECT count(*) FROM ({filters} LIMIT {_NARROW_FILTER})) < {_NARROW_FILTER} THEN 0 "
        f"WHEN (SELECT min(n) FROM text_grams) < {_GRAM_COUNT_CAP} THEN 2 "
        f"WHEN (SELECT count(*) FROM ({filters} LIMIT {_INTERSECT_WALK})) < {_INTERSECT_WALK} THEN 1 "
        "ELSE 2 END AS arm) "
    )
    return head, [*grams, *count_params, *count_params]


def build_text_arm_select(q: Query) -> tuple[str, list[object]] | None:
    """The SELECT of which arm (an index of ``TEXT_ARMS``) :func:`build_select` takes for an
    indexed text search, or None when it has no arms (for the benchmark and the tests)."""
    if not (uses_text_index(q, True) and q.limit is not None and q.order != "position"):
        return None
    head, params = _text_arm_head(q)
    return f"{head}SELECT arm FROM text_arm", params  # noqa: S608 - fixed fragments


def _intersect_clause(q: Query) -> tuple[str, list[str], list[object]]:
    """The filters' own clause (their index drives) and: the position is one of the trigram
    index's matches. ``+`` keeps SQLite from driving by that set instead; SQLite checks a term
    that needs only the index's columns (the position is the rowid, in every index) before it
    reads the row, so a row is read only for an event holding those trigrams.

    Only the text's first and last trigram are asked for: this arm runs when every trigram is
    common, where more of them narrow the set little but each costs a pass over its postings
    (on 1,000,000 events, "interval" + an action: 6 trigrams 88 ms, 2 trigrams 71 ms; the set
    holds the same 133,751 events). The LIKE check keeps the answer exact."""
    assert q.text is not None
    grams = _probed_trigrams(q.text)
    source, where, params = where_clause(q)
    k = "t" if source.startswith("audit_target") else "a"
    where.insert(
        len(where) - 1,  # before the LIKE check, which needs the row
        f"+{k}.position IN (SELECT rowid FROM audit_text WHERE audit_text MATCH ?)",  # noqa: S608
    )
    params.insert(len(params) - 2, " AND ".join(dict.fromkeys([grams[0], grams[-1]])))
    return source, where, params


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
