"""SELECTs for the SQLite store: a :class:`Query` in, parameterised SQL out.

Values are always bound, never formatted in; only fixed fragments are.
"""

from __future__ import annotations

from dataclasses import replace

from ..query import Query

__all__ = ["build_select", "build_recent_text_select", "where_clause", "COLUMNS_SQL", "TRIGRAM"]

# The trigram index (FTS5, migration 5) finds the candidates of a `text` search; each is then
# checked with the exact rule (LIKE: a substring, ASCII letters in either case, every other
# character exactly). The index folds case more widely than that rule, so it finds a superset,
# never fewer. A search shorter than a trigram cannot use it, and scans.
TRIGRAM = 3

COLUMNS_SQL = (
    "a.uid, a.workspace, a.id, a.action, a.actor, a.targets, a.metadata, a.timestamp, a.version, a.position"
)


def where_clause(q: Query, *, text_index: bool = False) -> tuple[str, list[str], list[object]]:
    """FROM and WHERE of a query: values are always bound, never formatted in.

    ``text_index``: the file has the trigram index (``audit_text``) for ``text`` searches."""
    by_target = q.target_type is not None or q.target_id is not None
    k = "t" if by_target else "a"  # the table whose (timestamp, uid) index drives the order
    source = (
        "audit_target AS t JOIN audit_log AS a ON a.position = t.position" if by_target else "audit_log AS a"
    )
    indexed_text = text_index and q.text is not None and len(q.text) >= TRIGRAM
    # With an indexed text search the index's matches drive the read (rowid look-ups, then a
    # sort of the matches); `+` keeps SQLite from scanning the workspace's time index instead.
    where = [f"+{k}.workspace = ?" if indexed_text and k == "a" else f"{k}.workspace = ?"]
    params: list[object] = [q.workspace]
    if q.event_id is not None:
        where.append("a.id = ?")
        params.append(q.event_id)
    if q.actions:
        where.append(f"a.action IN ({', '.join('?' * len(q.actions))})")
        params.extend(q.actions)
    if q.actor_id is not None:
        where.append("a.actor_id = ?")
        params.append(q.actor_id)
    if q.target_type is not None:
        where.append("t.type = ?")
        params.append(q.target_type)
    if q.target_id is not None:
        where.append("t.target_id = ?")
        params.append(q.target_id)
    if q.since is not None:
        where.append(f"{k}.timestamp >= ?")
        params.append(q.since)
    if q.until is not None:
        where.append(f"{k}.timestamp < ?")
        params.append(q.until)
    if q.uid is not None:
        where.append("a.uid = ?")
        params.append(q.uid)
    if q.text:
        if indexed_text:
            where.append("a.position IN (SELECT rowid FROM audit_text WHERE audit_text MATCH ?)")
            params.append(_every_trigram(q.text))
        pattern = "%" + q.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(a.id LIKE ? ESCAPE '\\' OR a.metadata LIKE ? ESCAPE '\\')")
        params.extend([pattern, pattern])
    return source, where, params


def _every_trigram(text: str) -> str:
    """An FTS5 query for the rows holding every trigram of ``text`` (each a quoted string):
    a superset of the rows holding ``text``, which the exact rule then narrows."""
    grams = dict.fromkeys(text[i : i + TRIGRAM] for i in range(len(text) - TRIGRAM + 1))
    return " AND ".join('"' + gram.replace('"', '""') + '"' for gram in grams)


def build_select(q: Query, *, text_index: bool = False) -> tuple[str, list[object]]:
    """The parameterised SELECT for a query, in the query's order."""
    if len(q.actions) > 1 and q.order != "position" and q.limit is not None:
        return _union_by_action(q, text_index)
    source, where, params = where_clause(q, text_index=text_index)
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
        sql += " LIMIT ?"
        params.append(q.limit)
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
