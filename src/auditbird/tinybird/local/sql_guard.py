"""What a ``/v0/sql`` query (or a rendered pipe) may touch, decided with ClickHouse's own parser.

The query is parsed by chDB itself (``parseQueryToJSON``: ClickHouse's parser, its AST as JSON, so a
quoted name, a heredoc or a comment means exactly what it means to the engine that will run it). The
tree is then checked against allowlists:

- the statement is one ``SELECT`` (``UNION``/``INTERSECT``/``EXCEPT``, ``WITH``, subqueries, joins
  allowed); no ``INTO OUTFILE``, no ``SETTINGS`` clause from the client;
- every node is of a kind in :data:`NODES`, every key of a node in :data:`KEYS`;
- tables: only the workspace's (the names the server passes: datasources, their quarantine
  tables, pipes, ``_``) and the query's own ``WITH`` names; no database-qualified name (``system.*``,
  ``information_schema.*``) anywhere; no table function at all (a ``table_function`` node is refused
  whatever its name);
- functions: the names ``system.functions`` lists (ClickHouse's own catalogue, read once), with the
  aggregate combinators (``countIf``, ``sumState`` …), minus the families that reach outside the
  query's data: files (``file``, ``filesystem*``), dictionaries and joins by name (``dict*``,
  ``joinGet*``), server and session introspection (``getSetting*``, ``hostName``, ``currentUser``
  …), stack introspection (``addressTo*``, ``demangle``), sleeping, and internal ``__`` names.
  Table functions are never in that catalogue's scalar part; a name that is both (``file``) is
  refused. (An allowlist taken from the catalogue rather than typed out: the ~1,800 functions
  Tinybird users write are all there, and every family that can touch files, the network or the
  server is named below and tested.)

What runs is not the client's text but the checked tree written back by ClickHouse
(``formatQueryFromJSON``), so nothing the check did not see can run. It runs with limits set by the
server: ``readonly=1`` (which also refuses table functions inside chDB), :data:`LIMITS` on time,
memory, result rows and bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .sql_allowlist import DENIED, DENIED_PREFIXES, KEYS, NODES, SYSTEM_DATABASES

__all__ = ["SqlGuard", "GuardError", "GuardedQuery", "LIMITS", "MAX_QUERY_BYTES"]

MAX_QUERY_BYTES = 256 << 10  # ClickHouse's own default max_query_size

# Settings the server adds to every query it runs for a client. Tinybird's API answers within 10 s by
# default; the rest keeps one query from taking the whole machine.
LIMITS: dict[str, int | str] = {
    "readonly": 1,
    "max_execution_time": 10,
    "timeout_overflow_mode": "throw",
    "max_memory_usage": 1 << 30,
    "max_result_rows": 1_000_000,
    "max_result_bytes": 256 << 20,
    "result_overflow_mode": "throw",
}


class GuardError(ValueError):
    """A query the guard refuses. A 400, as Tinybird answers a query it will not run; a 403 for a
    table the query may not read (outside the workspace, ``system.*``, or not in the token's scope),
    as Tinybird answers a resource the token cannot reach. The message is Tinybird's where it has one."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class GuardedQuery:
    sql: str  # the checked query as ClickHouse writes it back, with the server's SETTINGS
    fmt: str | None  # the client's FORMAT, if any (passed to chDB separately)
    body: str = ""  # the checked query as ClickHouse writes it back, alone (for a CTE)
    tables: frozenset[str] = frozenset()  # the tables it reads (not its own WITH names)


class SqlGuard:
    """Checks queries for one engine: ``guard.check(sql, tables)`` -> :class:`GuardedQuery`."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._checked: dict[tuple[str, frozenset[str], tuple[str, ...]], GuardedQuery] = {}
        rows = self._select(
            "SELECT name, is_aggregate, case_insensitive FROM system.functions "
            "WHERE name NOT IN (SELECT name FROM system.table_functions) OR name = 'format'"
        )
        self.functions: set[str] = set()
        self.aggregates: set[str] = set()
        for name, is_aggregate, case_insensitive in rows:
            key = name.lower() if case_insensitive else name
            if _denied(name):
                continue
            self.functions.add(key)
            if is_aggregate:
                self.aggregates.add(key)
        self.functions.add("lambda")  # ``x -> …`` (not in the catalogue: the parser's own node)
        self.combinators = sorted(
            (row[0] for row in self._select("SELECT name FROM system.aggregate_function_combinators")),
            key=len,
            reverse=True,
        )
        self.databases = {row[0].lower() for row in self._select("SELECT name FROM system.databases")}
        self.databases |= SYSTEM_DATABASES

    # -- chDB calls (query parameters, never text pasted into SQL) -------------------------------

    def _query(self, sql: str, params: dict[str, str] | None = None) -> str:
        from .engine import QueryError

        engine = self._engine
        with engine._lock:  # chDB is not thread-safe: the engine's one lock
            try:
                result = engine._session.query(sql, "TSVRaw", params=params or {})
            except Exception as exc:  # chDB raises its own error types
                raise QueryError(_first_line(str(exc))) from None
        text = bytes(result.bytes()).decode("utf-8") if result is not None else ""
        return text[:-1] if text.endswith("\n") else text

    def _select(self, sql: str) -> list[tuple[Any, ...]]:
        text = self._query(sql.replace("\n", " ") + " FORMAT JSONCompact")
        return [tuple(row) for row in json.loads(text)["data"]] if text else []

    def parse(self, sql: str) -> dict[str, Any]:
        """ClickHouse's AST of ``sql`` (one statement), as JSON."""
        try:
            text = self._query("SELECT parseQueryToJSON({q:String})", {"q": _tsv_escape(sql)})
        except ValueError as exc:
            raise GuardError(f"DB::Exception: {_syntax(str(exc))}") from None
        tree = json.loads(text)
        if not isinstance(tree, dict):
            raise GuardError("DB::Exception: the query could not be parsed")
        return tree

    def write(self, tree: dict[str, Any]) -> str:
        """The SQL of a checked tree, as ClickHouse writes it."""
        return self._query("SELECT formatQueryFromJSON({j:String})", {"j": _tsv_escape(json.dumps(tree))})

    def run(self, query: GuardedQuery, fmt: str) -> bytes:
        """Run a checked query on the engine (``fmt``: the output format)."""
        from .engine import QueryError

        try:
            return bytes(self._engine.run(query.sql, fmt))
        except QueryError:
            # chDB keeps the header a JSON-like format already wrote when a query fails mid-way (a
            # result limit) and hands it out as the NEXT query's result: drain it here, on the same
            # worker thread, before anything else runs.
            self._query("SELECT 1")
            raise

    # -- the check -----------------------------------------------------------------------------

    def check(self, sql: str, tables: Iterable[str], formats: Iterable[str] = ()) -> GuardedQuery:
        """Parse, check and rewrite ``sql``; raise :class:`GuardError` for anything not allowed.

        ``tables``: the names the query may read (the workspace's datasources and pipes, ``_``).
        ``formats``: the output formats a ``FORMAT`` clause may name.
        """
        key = (sql, frozenset(tables), tuple(formats))
        found = self._checked.get(key)
        if found is not None:
            return found
        checked = self._check(sql, key[1], key[2])
        if len(sql) <= 64 << 10:  # a pipe's rendered SQL repeats; a checked query stays checked
            if len(self._checked) >= 1024:
                self._checked.clear()
            self._checked[key] = checked
        return checked

    def _check(self, sql: str, tables: frozenset[str], formats: tuple[str, ...]) -> GuardedQuery:
        if len(sql.encode("utf-8", "surrogatepass")) > MAX_QUERY_BYTES:
            raise GuardError(
                f"DB::Exception: the query is longer than {MAX_QUERY_BYTES} bytes (max_query_size)"
            )
        tree = self.parse(sql)
        if tree.get("type") != "SelectWithUnionQuery":
            raise GuardError(f"DB::Exception: Only SELECT queries are supported, not {tree.get('type')}")
        own = set(_with_names(tree))
        allowed = set(tables) | own
        for node in _nodes(tree):
            self._check_node(node, allowed)
        read = frozenset(str(n["name"]) for n in _nodes(tree) if n.get("type") == "TableIdentifier") - own
        fmt = None
        format_ast = tree.pop("format_ast", None)
        if format_ast is not None:
            names = {f.lower(): f for f in formats}
            fmt = names.get(str(format_ast.get("name", "")).lower())
            if fmt is None:
                raise GuardError(
                    f"format {format_ast.get('name')} is not supported; use one of {', '.join(formats)}"
                )
        # Wrapped: a trailing SETTINGS clause binds to the last SELECT of a UNION, and ClickHouse does
        # not count result rows of a SELECT without FROM; around a subquery the limits hold for all.
        written = self.write(tree)
        body = f"SELECT * FROM ({written})"  # noqa: S608 - ClickHouse wrote it from the checked tree
        settings = ", ".join(f"{k} = {_setting(v)}" for k, v in LIMITS.items())
        return GuardedQuery(f"{body} SETTINGS {settings}", fmt, written, read)

    def tables_read(self, sql: str) -> set[str]:
        """Every table name ``sql`` reads as ClickHouse's parser sees it (``db.table`` when qualified),
        without checking anything: what Tinybird's ``/v0/sql_tables`` answers."""
        tree = self.parse(sql)
        return {
            ".".join(map(str, n["name_parts"])) if n.get("name_parts") else str(n.get("name", ""))
            for n in _nodes(tree)
            if n.get("type") == "TableIdentifier"
        }

    def _check_node(self, node: dict[str, Any], tables: set[str]) -> None:
        kind = node.get("type")
        if kind == "TableExpression" and "table_function" in node:
            name = (
                node["table_function"].get("name", "?") if isinstance(node["table_function"], dict) else "?"
            )
            raise GuardError(f"The query uses disabled table functions: '{name}'")
        if kind not in NODES:
            what = "a SETTINGS clause" if kind == "SetQuery" else f"{kind}"
            raise GuardError(f"DB::Exception: {what} is not allowed here")
        for key in node:
            if key not in KEYS:
                what = {"out_file": "INTO OUTFILE", "settings": "a SETTINGS clause"}.get(key, key)
                raise GuardError(f"DB::Exception: {what} is not allowed")
        if any(
            node.get(flag)
            for flag in ("is_outfile_append", "is_outfile_truncate", "is_into_outfile_with_stdout")
        ):
            raise GuardError("DB::Exception: INTO OUTFILE is not allowed")
        if kind == "TableIdentifier":
            name = str(node.get("name", ""))
            if "name_parts" in node or name not in tables:
                raise GuardError(
                    f"Resource '{name}' not found: a query reads the workspace's datasources and pipes "
                    f"its token may read ({', '.join(sorted(tables)) or 'none'})",
                    403,
                )
        if kind in {"Identifier", "QualifiedAsterisk"}:
            parts = node.get("name_parts") or []
            if len(parts) > 1 and str(parts[0]).lower() in self.databases:
                raise GuardError(
                    f"DB::Exception: '{node.get('name')}' is not allowed: no database-qualified names",
                    403,
                )
        if kind == "Function":
            self.check_function(str(node.get("name", "")))
        if "func_name" in node:
            self.check_function(str(node["func_name"]))

    def check_function(self, name: str) -> None:
        if self.allowed_function(name):
            return
        raise GuardError(f"The query uses disabled functions: '{name}'")

    def allowed_function(self, name: str) -> bool:
        if name in self.functions or name.lower() in self.functions:
            return not _denied(name)
        # countIf, sumStateIf, uniqMerge …: an allowed aggregate with combinator suffixes.
        base = name
        while True:
            for suffix in self.combinators:
                if base.endswith(suffix) and len(base) > len(suffix):
                    base = base[: -len(suffix)]
                    break
            else:
                return False
            if base in self.aggregates or base.lower() in self.aggregates:
                return not _denied(base)


def _denied(name: str) -> bool:
    lowered = name.lower()
    return lowered in DENIED or lowered.startswith(DENIED_PREFIXES)


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "type" in item:
                yield item
            for key, value in item.items():
                if key != "value":  # a literal's value is data, never a node
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def _with_names(tree: dict[str, Any]) -> Iterator[str]:
    for node in _nodes(tree):
        if node.get("type") == "WithElement" and isinstance(node.get("name"), str):
            yield node["name"]


def _tsv_escape(text: str) -> str:
    """A query parameter's value is read as escaped TSV: backslash, tab and newlines escaped."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _setting(value: int | str) -> str:
    return str(value) if isinstance(value, int) else "'" + value + "'"


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "query failed"


def _syntax(message: str) -> str:
    text = message.split("DB::Exception: ", 1)[-1]
    return text.split(": In scope SELECT parseQueryToJSON", 1)[0]
