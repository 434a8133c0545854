"""SELECTs for the PostgreSQL store: a :class:`Query` in, parameterised SQL out.

The same shapes as :mod:`auditbird.stores.sqlite_query`, with ``%s`` placeholders; values are
always bound, only fixed fragments are formatted in.
"""

from __future__ import annotations

from dataclasses import replace

from ..query import Query
from .postgres_schema import ascii_fold

__all__ = ["build_select", "where_clause", "COLUMNS_SQL", "fold_ascii"]

COLUMNS_SQL = (
    "a.uid, a.workspace, a.id, a.action, a.actor, a.targets, a.metadata, a.timestamp, a.version, a.position"
)

_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# Each column alone, so no match spans the id and the metadata. With the opt-in trigram index
# the joined, indexed expression (postgres_schema.ASCII_FOLD, over the alias `a`) comes first,
# for the planner to match to the index; without it that would be a third fold for every row.
_TEXT = f"({ascii_fold('a.id')} LIKE %s OR {ascii_fold('a.metadata')} LIKE %s)"
_TEXT_INDEXED = ascii_fold("a.id || E'\\n' || coalesce(a.metadata, '')") + " LIKE %s AND " + _TEXT


def fold_ascii(text: str) -> str:
    """Lower-case A-Z only, as the text index does.

    >>> fold_ascii("Disk FULL Éclair")
    'disk full Éclair'
    """
    return text.translate(_FOLD)


def where_clause(q: Query, *, text_index: bool = False) -> tuple[str, list[str], list[object]]:
    """FROM and WHERE of a query; ``text_index``: the database has the trigram index."""
    by_target = q.target_type is not None or q.target_id is not None
    k = "t" if by_target else "a"
    source = (
        "audit_target AS t JOIN audit_log AS a ON a.position = t.position" if by_target else "audit_log AS a"
    )
    where = [f"{k}.workspace = %s"]
    params: list[object] = [q.workspace]
    if q.event_id is not None:
        where.append("a.id = %s")
        params.append(q.event_id)
    if len(q.actions) == 1:
        where.append("a.action = %s")
        params.append(q.actions[0])
    elif q.actions:
        where.append("a.action = ANY(%s)")
        params.append(list(q.actions))
    if q.actor_id is not None:
        where.append("a.actor_id = %s")
        params.append(q.actor_id)
    if q.target_type is not None:
        where.append("t.type = %s")
        params.append(q.target_type)
    if q.target_id is not None:
        where.append("t.target_id = %s")
        params.append(q.target_id)
    if q.since is not None:
        where.append(f"{k}.timestamp >= %s")
        params.append(q.since)
    if q.until is not None:
        where.append(f"{k}.timestamp < %s")
        params.append(q.until)
    if q.uid is not None:
        where.append("a.uid = %s")
        params.append(q.uid)
    if q.text:
        escaped = q.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = "%" + fold_ascii(escaped) + "%"
        if text_index:
            where.append(_TEXT_INDEXED)
            params.append(pattern)
        else:
            where.append(_TEXT)
        params.extend([pattern, pattern])
    return source, where, params


def build_select(q: Query, *, text_index: bool = False) -> tuple[str, list[object]]:
    """The parameterised SELECT for a query, in the query's order."""
    if len(q.actions) > 1 and q.order != "position" and q.limit is not None:
        return _union_by_action(q, text_index)
    source, where, params = where_clause(q, text_index=text_index)
    k = "t" if source.startswith("audit_target") else "a"
    # One target row per (type, id): matching only one of them can meet an event twice.
    distinct = k == "t" and (q.target_type is None or q.target_id is None)
    if distinct:
        k = "a"  # DISTINCT needs its ORDER BY among the selected columns
    if q.order == "position":
        if q.after_position is not None:
            where.append("a.position > %s")
            params.append(q.after_position)
        order = "a.position ASC"
    else:
        direction = "DESC" if q.order == "desc" else "ASC"
        if q.after is not None:
            where.append(f"({k}.timestamp, {k}.uid) {'<' if direction == 'DESC' else '>'} (%s, %s)")
            params.extend(q.after)
        order = f"{k}.timestamp {direction}, {k}.uid {direction}"
    head = "SELECT DISTINCT" if distinct else "SELECT"
    sql = f"{head} {COLUMNS_SQL} FROM {source} WHERE {' AND '.join(where)} ORDER BY {order}"  # noqa: S608 - fixed fragments only
    if q.limit is not None:
        sql += " LIMIT %s"
        params.append(q.limit)
    return sql, params


def _union_by_action(q: Query, text_index: bool) -> tuple[str, list[object]]:
    """Several actions: one indexed, limited SELECT per action, merged (``action = ANY``
    would sort every matching row of the log to find the newest page)."""
    arms, params = [], []
    for name in q.actions:
        sql, arm_params = build_select(replace(q, actions=(name,)), text_index=text_index)
        arms.append(f"({sql})")
        params.extend(arm_params)
    direction = "DESC" if q.order == "desc" else "ASC"
    union = " UNION ALL ".join(arms)
    sql = f"SELECT * FROM ({union}) AS u ORDER BY timestamp {direction}, uid {direction} LIMIT %s"  # noqa: S608
    params.append(q.limit)
    return sql, params
