"""Queries as Tinybird resolves them: pipes by name, ``_`` for a pipe's result, no system tables.

In Tinybird a SQL query (``/v0/sql``, or ``q=`` on a pipe) reads the workspace's datasources and
its pipes by name (a pipe is its endpoint node's result, rendered with the request's parameters),
and ``_`` is the pipe under ``pipeline=`` (or the pipe ``q=`` is given to). Anything outside the
workspace or the token's scope (``system.*``, ``information_schema.*``, another database) is a 403.

What a query may do is decided by :class:`.sql_guard.SqlGuard` alone, on ClickHouse's own parse
tree; the tables it reads come from that same tree. A pipe read by name becomes a CTE holding the
pipe's own SQL, checked by the guard too, so everything that runs was checked and written back by
ClickHouse.
"""

from __future__ import annotations

import dataclasses
import json

from .engine import FORMATS, Engine, QueryError
from .sql_guard import GuardedQuery, SqlGuard

__all__ = ["guarded", "pipe_query", "run_sql", "PIPE_JSON_KEYS", "OUTPUT_SETTINGS"]

PIPE_JSON_KEYS = ("meta", "data", "rows", "rows_before_limit_at_least", "statistics")
# Settings a request may pass as parameters, as Tinybird's Pipes and Query APIs take them.
OUTPUT_SETTINGS = ("output_format_json_quote_64bit_integers", "output_format_json_quote_denormals")


def workspace_tables(engine: Engine) -> set[str]:
    """Every name a pipe's own SQL may read: datasources, their quarantine tables, pipes."""
    return {*engine.datasources, *(f"{ds}_quarantine" for ds in engine.datasources), *engine.pipes}


def pipe_query(guard: SqlGuard, engine: Engine, name: str, params: dict[str, str]) -> GuardedQuery:
    """The pipe's endpoint SQL rendered with ``params``, checked by the guard."""
    return guard.check(engine.pipe_sql(name, params), workspace_tables(engine))


def _cte(name: str, sql: str) -> str:
    return f"`{name}` AS ({sql})"


def guarded(
    guard: SqlGuard,
    engine: Engine,
    sql: str,
    readable: set[str],
    params: dict[str, str],
    underscore: str | None = None,
) -> GuardedQuery:
    """``sql`` checked against the tables the caller may read, with each pipe it reads (and ``_``, the
    pipe ``underscore``) defined as a CTE of that pipe's checked SQL.

    Raises :class:`.sql_guard.GuardError` (a 403 for a table it may not read, else a 400).
    """
    query = guard.check(sql, {*readable, "_"}, FORMATS)
    ctes = []
    if "_" in query.tables:
        if underscore is None:
            raise QueryError("'_' is the pipe's result: pass pipeline=<pipe name> to read it")
        ctes.append(_cte("_", pipe_query(guard, engine, underscore, params).body))
    for name in sorted(query.tables):
        if name in engine.pipes and name not in engine.datasources and name != "_":
            ctes.append(_cte(name, pipe_query(guard, engine, name, params).body))
    if not ctes:
        return query
    # The guard's query is ``SELECT * FROM (...) SETTINGS ...``: CTEs defined before it are seen
    # inside (ClickHouse's enable_global_with_statement), and its SETTINGS hold for them too.
    return dataclasses.replace(query, sql="WITH " + ", ".join(ctes) + "\n" + query.sql)


def run_sql(
    guard: SqlGuard, engine: Engine, query: GuardedQuery, fmt: str, settings: dict[str, str]
) -> bytes:
    """Run a guarded query in ``fmt`` with output ``settings`` (0/1) set for this query alone.

    The engine runs on one worker thread, so setting and resetting around the query is not seen by
    any other request.
    """
    applied = {k: v for k, v in settings.items() if k in OUTPUT_SETTINGS}
    for key, value in applied.items():
        if value not in {"0", "1", "true", "false"}:
            raise QueryError(f"{key} must be 0 or 1, not {value!r}")
        engine.run(f"SET {key} = {1 if value in {'1', 'true'} else 0}")
    try:
        output = guard.run(query, fmt)
    finally:
        for key in applied:
            engine.run(f"SET {key} = 0")
    if fmt != "JSON":
        return output
    doc = json.loads(output)
    doc.setdefault("rows", len(doc.get("data", [])))
    doc.setdefault("rows_before_limit_at_least", doc["rows"])
    ordered = {k: doc[k] for k in PIPE_JSON_KEYS if k in doc}
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
