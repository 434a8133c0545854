"""Appending to the PostgreSQL store: positions in commit order, with no gaps.

A ``bigserial`` would be neither: sequence values are handed out at INSERT time, so a
transaction that took 7 may commit after one that took 8 (a follower at 8 never sees 7), and
a rolled-back transaction leaves a hole. eventsourcing's PostgreSQL recorder solves the first
by taking ``LOCK TABLE ... IN EXCLUSIVE MODE`` before inserting, which is what this store does,
and it solves the second too by numbering from ``max(position) + 1`` under that lock:

1. ``LOCK TABLE audit_log IN EXCLUSIVE MODE``: one writer at a time, until its COMMIT or
   ROLLBACK. Readers (``ACCESS SHARE``) are never blocked.
2. One statement numbers the new rows ``max(position) + 1 ..`` (the primary key's last entry),
   skips uids the workspace already holds (the first stored copy wins), inserts the events and
   their target rows, and says how many it stored.
3. COMMIT. PostgreSQL makes a transaction visible before it releases its locks, so when the
   next writer numbers its rows every smaller position is already visible: a reader that
   has seen position *p* will never later find a new row at or below *p*.

The lock is held until the caller's commit: inside ``auditbird.emit`` that is the
application's transaction, so keep such transactions short (they serialise, as with SQLite).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .._errors import AuditValidationError, ConflictError, Problem
from ..row import COLUMNS, Row

__all__ = ["write_rows", "append_pipelined", "LOCK", "check_text"]

LOCK = "LOCK TABLE audit_log IN EXCLUSIVE MODE"

_INSERT = """
WITH rev AS (  -- the stream's revision, counted only when the append expects one
    SELECT count(*) AS current FROM audit_log
    WHERE %(check)s AND workspace = %(stream_ws)s AND id = %(stream)s
), v AS (
    SELECT * FROM unnest(%(uid)b::text[], %(workspace)b::text[], %(id)b::text[], %(action)b::text[],
                         %(actor)b::text[], %(targets)b::text[], %(metadata)b::text[],
                         %(timestamp)b::bigint[], %(version)b::int[], %(actor_id)b::text[])
        WITH ORDINALITY
        AS v(uid, workspace, id, action, actor, targets, metadata, timestamp, version, actor_id, n)
), fresh AS (
    SELECT v.*, row_number() OVER (ORDER BY v.n) AS k FROM v
    WHERE (NOT %(check)s OR (SELECT current FROM rev) = %(expected)s)
      -- OFFSET 0 keeps this a per-row probe of the (workspace, uid) index: as an anti-join the
      -- planner hashes the whole table instead, a batch costing O(table) (seen in EXPLAIN).
      AND NOT EXISTS (SELECT 1 FROM audit_log AS a WHERE a.workspace = v.workspace AND a.uid = v.uid OFFSET 0)
), ins AS (
    INSERT INTO audit_log (position, uid, workspace, id, action, actor, targets, metadata, timestamp,
                           version, actor_id)
    SELECT (SELECT coalesce(max(position), 0) FROM audit_log) + k, uid, workspace, id, action, actor,
           targets, metadata, timestamp, version, actor_id
    FROM fresh ORDER BY k
    RETURNING position, workspace, targets, timestamp, uid
), tgt AS (
    INSERT INTO audit_target (position, workspace, type, target_id, timestamp, uid)
    SELECT DISTINCT ins.position, ins.workspace,
           coalesce(nullif(j ->> 'type', ''), nullif(j ->> 'name', ''), ''),
           coalesce(j ->> 'id', ''), ins.timestamp, ins.uid
    FROM ins CROSS JOIN LATERAL json_array_elements(ins.targets::json) AS j
    WHERE ins.targets <> '[]'
)
SELECT n, (SELECT current FROM rev), CASE WHEN n > 0 THEN pg_notify('auditbird_commit', '') END
FROM (SELECT count(*) AS n FROM ins) AS stored
"""


def write_rows(conn: Any, rows: Sequence[Row], *, expected_revision: int | None = None) -> int:
    """Insert ``rows`` inside ``conn``'s open transaction; returns how many were new.

    Takes the table lock (held until the caller commits or rolls back). With
    ``expected_revision`` (every row of one stream), raises :class:`ConflictError` unless the
    stream holds exactly that many events. Shared by the store and ``auditbird.emit``."""
    params = prepare(rows, expected_revision)
    conn.execute(LOCK)
    return stored_count(conn.execute(_INSERT, params).fetchone(), rows, expected_revision)


def append_pipelined(conn: Any, rows: Sequence[Row], *, expected_revision: int | None = None) -> int:
    """:func:`write_rows` in a transaction of its own, sent in one round trip (psycopg's
    pipeline mode: BEGIN, LOCK, the INSERT and COMMIT go out together). ``conn`` is an
    autocommit connection. A conflict commits nothing and raises :class:`ConflictError`."""
    if len(rows) == 1 and expected_revision is None:
        return _append_one(conn, rows[0])
    params = prepare(rows, expected_revision)
    with conn.pipeline(), conn.transaction():
        conn.execute(LOCK, prepare=True)  # prepared: planning the INSERT costs ~0.3 ms a time
        cursor = conn.execute(_INSERT, params, prepare=True)
    return stored_count(cursor.fetchone(), rows, expected_revision)


# The single publish, the most common write: one call of auditbird_append_one (schema 2, in
# stores/postgres_schema.py), which locks, numbers, inserts the event and its target rows and
# notifies, in the implicit transaction of an autocommit statement: one message, one round
# trip, no BEGIN/COMMIT. Target rows are parsed here (the batch statement does it in SQL).
_APPEND_ONE = "SELECT auditbird_append_one(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %b::text[], %b::text[])"


def _append_one(conn: Any, row: Row) -> int:
    check_text([row])
    targets = _targets(row.targets)
    types, ids = [t[0] for t in targets], [t[1] for t in targets]
    params = (*row[:9], _actor_id(row.actor), types, ids)
    return int(conn.execute(_APPEND_ONE, params, prepare=True).fetchone()[0])


def _targets(targets: str) -> list[tuple[str, str]]:
    """Distinct ``(type, id)`` of a row's targets; the type is ``type``, or the seed's ``name``
    (what the batch statement computes in SQL)."""
    if targets == "[]":
        return []
    out: dict[tuple[str, str], None] = {}
    for t in json.loads(targets):
        kind = t.get("type") or t.get("name") or ""
        ident = t.get("id")
        out[(str(kind), "" if ident is None else _json_text(ident))] = None
    return list(out)


def _json_text(value: Any) -> str:
    """What PostgreSQL's ``->>`` gives for a JSON value: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def prepare(rows: Sequence[Row], expected_revision: int | None) -> dict[str, Any]:
    """The statement's parameters: one array per column, the batch's first copies only."""
    rows = _first_copies(rows)
    check_text(rows)
    # Transposed in C (zip), and each distinct actor parsed once: a batch has few actors.
    columns = list(zip(*(row[:9] for row in rows), strict=True)) if rows else [() for _ in COLUMNS]
    params: dict[str, Any] = {name: list(values) for name, values in zip(COLUMNS, columns, strict=True)}
    actor_ids: dict[str, str] = {}
    for actor in params["actor"]:
        if actor not in actor_ids:
            actor_ids[actor] = _actor_id(actor)
    params["actor_id"] = [actor_ids[actor] for actor in params["actor"]]
    workspace, stream = _single_stream(rows) if expected_revision is not None else ("", "")
    params.update(check=expected_revision is not None, stream_ws=workspace, stream=stream)
    params["expected"] = expected_revision
    return params


def stored_count(result: Any, rows: Sequence[Row], expected_revision: int | None) -> int:
    count, current, _ = result
    if expected_revision is not None and current != expected_revision:
        stream = rows[0].id
        raise ConflictError(
            f"stream {stream!r} is at revision {current}, not {expected_revision}: "
            "another writer got there first; reload the stream and retry"
        )
    return int(count)


def _first_copies(rows: Sequence[Row]) -> Sequence[Row]:
    """A uid repeated inside one batch is stored once: its first copy."""
    if len({(row.workspace, row.uid) for row in rows}) == len(rows):
        return rows  # the common case, checked in one pass of C
    seen: set[tuple[str, str]] = set()
    out = []
    for row in rows:
        key = (row.workspace, row.uid)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def _actor_id(actor: str) -> str:
    try:
        value = json.loads(actor).get("id", "")
    except (ValueError, AttributeError):
        return ""
    return "" if value is None else str(value)


_FIELDS = ("uid", "workspace", "id", "action")


def check_text(rows: Sequence[Row]) -> None:
    """PostgreSQL ``text`` cannot hold U+0000: refuse such a batch whole, naming the fields,
    before anything is written. Metadata may hold ``\\u0000`` (six ASCII characters in its JSON
    text, kept as written); actor and targets may not, since their ids are decoded into
    look-up columns."""
    problems = []
    for index, row in enumerate(rows):
        for name, value in zip(_FIELDS, (row.uid, row.workspace, row.id, row.action), strict=True):
            if "\x00" in value:
                problems.append(Problem(name, _NUL, index))
        for name, text in (("actor", row.actor), ("targets", row.targets)):
            if "\\u0000" in text and _has_nul(json.loads(text)):
                problems.append(Problem(name, _NUL, index))
    if problems:
        raise AuditValidationError(problems)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


_NUL = "contains U+0000 (a NUL character), which PostgreSQL text cannot hold; remove it"


def _single_stream(rows: Sequence[Row]) -> tuple[str, str]:
    streams = {(r.workspace, r.id) for r in rows}
    if len(streams) != 1:
        raise ValueError("expected_revision needs every event of the append in one stream")
    return streams.pop()
