"""Queries as Tinybird resolves them: pipes by name, ``_`` for a pipe's result, no system tables.

In Tinybird a SQL query (``/v0/sql``, or ``q=`` on a pipe) reads the workspace's datasources and
its pipes by name (a pipe is its endpoint node's result, rendered with the request's parameters),
and ``_`` is the pipe under ``pipeline=`` (or the pipe ``q=`` is given to). Anything outside the
workspace (``system.*``, ``information_schema.*``, another database) is refused.

Which tables a query reads is taken from ClickHouse's own parser (``EXPLAIN AST``), never from the
text: only unqualified names are allowed, and a pipe's name becomes a CTE holding its SQL.
"""

from __future__ import annotations

import json
import re

from .engine import Engine, QueryError, check_select

__all__ = ["TableRefused", "tables_read", "resolve", "run_sql", "PIPE_JSON_KEYS"]

PIPE_JSON_KEYS = ("meta", "data", "rows", "rows_before_limit_at_least", "statistics")
_TABLE = re.compile(r"^\s*TableIdentifier (\S+)(?: \(alias \S+\))?\s*$")
# Settings a request may pass as parameters, as Tinybird's Pipes and Query APIs take them.
OUTPUT_SETTINGS = ("output_format_json_quote_64bit_integers", "output_format_json_quote_denormals")


class TableRefused(QueryError):
    """A query reading outside the workspace: a 403, as Tinybird answers it."""


def tables_read(engine: Engine, sql: str) -> set[str]:
    """Every table name the query reads, as ClickHouse's parser sees it."""
    ast = engine.run("EXPLAIN AST " + sql, "TSVRaw").decode("utf-8", "replace")
    return {m.group(1) for line in ast.splitlines() if (m := _TABLE.match(line))}


def _cte(name: str, sql: str) -> str:
    return f"`{name}` AS ({sql})"


def resolve(engine: Engine, sql: str, params: dict[str, str], underscore: str | None = None) -> str:
    """``sql`` with each pipe it reads (and ``_``, the pipe ``underscore``) defined as a CTE.

    Raises :class:`TableRefused` for a table outside the workspace.
    """
    names = tables_read(engine, sql)
    for name in sorted(names):
        if "." in name or name.lower().startswith("information_schema"):
            raise TableRefused(
                f"Resource '{name}' not found: queries read only this workspace's Data Sources and Pipes"
            )
    ctes = []
    if "_" in names:
        if underscore is None:
            raise QueryError("'_' is the pipe's result: pass pipeline=<pipe name> to read it")
        ctes.append(_cte("_", engine.pipe_sql(underscore, params)))
    for name in sorted(names):
        if name in engine.pipes and name not in engine.datasources:
            ctes.append(_cte(name, engine.pipe_sql(name, params)))
    if not ctes:
        return sql
    if re.match(r"^\s*WITH\b", sql, re.I):
        return "WITH " + ", ".join(ctes) + ", " + re.sub(r"^\s*WITH\b", "", sql, count=1, flags=re.I)
    return "WITH " + ", ".join(ctes) + "\n" + sql


def run_sql(engine: Engine, sql: str, fmt: str, settings: dict[str, str]) -> bytes:
    """Run ``sql`` in ``fmt`` with output ``settings`` (0/1) set for this query alone.

    The engine runs on one worker thread, so setting and resetting around the query is not seen by
    any other request.
    """
    applied = {k: v for k, v in settings.items() if k in OUTPUT_SETTINGS}
    for key, value in applied.items():
        if value not in {"0", "1", "true", "false"}:
            raise QueryError(f"{key} must be 0 or 1, not {value!r}")
        engine.run(f"SET {key} = {1 if value in {'1', 'true'} else 0}")
    try:
        output = engine.run(sql, fmt)
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


def checked(sql: str) -> tuple[str, str | None]:
    """The read-only shape check every query passes first (one SELECT, no table functions)."""
    return check_select(sql)
