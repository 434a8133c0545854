"""Tinybird datafiles: parse ``.datasource`` and ``.pipe`` files, and ship auditbird's own.

The files under ``datafiles/`` (package data) are the single source of truth for the ClickHouse
schema and the queries of the Tinybird store: ``tb push`` sends them to Tinybird, and the local
server (:mod:`auditbird.tinybird.local`) loads the very same files into chDB.

>>> ds = load_datasource(SHIPPED / "datasources" / "audit_log.datasource")
>>> [c.name for c in ds.columns][:3]
['uid', 'workspace', 'id']
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .datafile_rules import column_problem, directive_problem, engine_problems, parameter_problem

__all__ = [
    "SHIPPED",
    "Column",
    "Datasource",
    "Node",
    "Pipe",
    "DatafileError",
    "parse_datasource",
    "parse_pipe",
    "load_datasource",
    "load_pipe",
    "load_dir",
    "shipped_files",
    "write_datafiles",
    "split_top_level",
]

SHIPPED = Path(__file__).with_name("datafiles")


class DatafileError(ValueError):
    """A datafile that cannot be read: says which file and line."""


@dataclass(frozen=True)
class Column:
    """One column of a ``SCHEMA >`` block: `` `name` Type `json:$.path` DEFAULT expr ``."""

    name: str
    type: str
    jsonpath: str | None = None
    default: str | None = None
    materialized: str | None = None
    codec: str | None = None

    @property
    def nullable(self) -> bool:
        return self.type.startswith("Nullable(")

    @property
    def ingested(self) -> bool:
        """Whether the column is read from incoming rows (not computed by ClickHouse)."""
        return self.materialized is None

    def ddl(self) -> str:
        out = f"`{self.name}` {self.type}"
        if self.default is not None:
            out += f" DEFAULT {self.default}"
        if self.materialized is not None:
            out += f" MATERIALIZED {self.materialized}"
        if self.codec is not None:
            out += f" CODEC({self.codec})"
        return out


@dataclass(frozen=True)
class Datasource:
    name: str
    columns: tuple[Column, ...]
    engine: str = "MergeTree"
    sorting_key: str | None = None
    partition_key: str | None = None
    primary_key: str | None = None
    ttl: str | None = None
    ver: str | None = None
    settings: str | None = None
    indexes: tuple[str, ...] = ()
    description: str = ""

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def create_table_sql(self, table: str | None = None) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for ClickHouse, from the datafile's declarations."""
        parts = [c.ddl() for c in self.columns] + [f"INDEX {i}" for i in self.indexes]
        engine = self.engine
        if "(" not in engine:
            engine += f"({self.ver})" if self.ver else "()"
        sql = f"CREATE TABLE IF NOT EXISTS `{table or self.name}` (\n    " + ",\n    ".join(parts) + "\n)"
        sql += f"\nENGINE = {engine}"
        if self.partition_key:
            sql += f"\nPARTITION BY {self.partition_key}"
        if self.primary_key:
            sql += f"\nPRIMARY KEY ({self.primary_key})"
        sql += f"\nORDER BY ({self.sorting_key})" if self.sorting_key else "\nORDER BY tuple()"
        if self.ttl:
            sql += f"\nTTL {self.ttl}"
        if self.settings:
            sql += f"\nSETTINGS {self.settings}"
        return sql


@dataclass(frozen=True)
class Node:
    name: str
    sql: str
    description: str = ""
    type: str | None = None


@dataclass(frozen=True)
class Pipe:
    name: str
    nodes: tuple[Node, ...]
    description: str = ""
    type: str | None = None  # "endpoint" for an API endpoint
    tokens: tuple[str, ...] = field(default=())

    @property
    def endpoint(self) -> Node:
        """The node the endpoint returns: the one marked ``TYPE endpoint``, else the last one."""
        for node in self.nodes:
            if (node.type or "").lower() == "endpoint":
                return node
        return self.nodes[-1]


# -- the datafile format ------------------------------------------------------------------
# Directives start at column 0: `KEY value` or `KEY >` followed by an indented block.

_DIRECTIVE = re.compile(r"^([A-Z][A-Z0-9_]*)(?:\s+(.*?))?\s*$")


def _sections(text: str, where: str) -> list[tuple[str, str, int]]:
    """(key, value, line) per directive; a block's value is its dedented, joined lines."""
    out: list[tuple[str, str, int]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        if line[0].isspace():
            raise DatafileError(f"{where}:{i + 1}: indented line outside a block: {line.strip()!r}")
        match = _DIRECTIVE.match(line)
        if not match:
            raise DatafileError(f"{where}:{i + 1}: not a datafile directive: {line.strip()!r}")
        key, value = match.group(1), (match.group(2) or "")
        start = i + 1
        i += 1
        if value == ">":
            block: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i][0].isspace()):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            indent = min((len(b) - len(b.lstrip()) for b in block if b.strip()), default=0)
            value = "\n".join(b[indent:] for b in block)
        out.append((key, _unquote(value), start))
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside parentheses, brackets, quotes and backticks."""
    parts, depth, buf, quote = [], 0, [], ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            buf.append(ch)
            if ch == "\\" and i + 1 < len(text):
                buf.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
            buf.append(ch)
        elif ch in "([{":
            depth += 1
            buf.append(ch)
        elif ch in ")]}":
            depth -= 1
            buf.append(ch)
        elif ch == sep and depth == 0:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    if "".join(buf).strip():
        parts.append("".join(buf))
    return [p.strip() for p in parts if p.strip()]


_COLUMN = re.compile(r"^`?([A-Za-z_][A-Za-z0-9_]*)`?\s+(.*)$", re.S)
_JSONPATH = re.compile(r"`json:([^`]*)`")
_KEYWORD = re.compile(r"\s(DEFAULT|MATERIALIZED|CODEC)\s", re.I)
_QUOTED = re.compile(r"`[^`]*`|'(?:[^'\\]|\\.)*'")
_TYPE_END = re.compile(r"\s(?:DEFAULT|MATERIALIZED|ALIAS|CODEC|TTL|NULL|NOT|`json:)", re.I)


def _type_of(rest: str) -> str:
    """The declared type at the start of a column's text (before any modifier or JSONPath)."""
    end = _TYPE_END.search(" " + rest)
    return (rest if end is None else (" " + rest)[: end.start()]).strip()


def _parse_column(spec: str, where: str) -> Column:
    match = _COLUMN.match(spec.strip())
    if not match:
        raise DatafileError(f"{where}: cannot read column {spec!r}")
    name, rest = match.group(1), match.group(2)
    problem = column_problem(_type_of(rest), _QUOTED.sub("''", rest))
    if problem:
        raise DatafileError(f"{where}: column {name!r}: {problem}")
    jsonpath = None
    path_match = _JSONPATH.search(rest)
    if path_match:
        jsonpath = path_match.group(1).strip()
        rest = rest[: path_match.start()] + " " + rest[path_match.end() :]
    rest = " ".join(rest.split()) + " "
    found: dict[str, str] = {}
    pieces = _KEYWORD.split(" " + rest)
    col_type = pieces[0].strip()
    for key, value in zip(pieces[1::2], pieces[2::2], strict=True):
        found[key.upper()] = value.strip()
    codec = found.get("CODEC")
    if codec and codec.startswith("(") and codec.endswith(")"):
        codec = codec[1:-1]
    if not col_type:
        raise DatafileError(f"{where}: column {name!r} has no type")
    return Column(name, col_type, jsonpath, found.get("DEFAULT"), found.get("MATERIALIZED"), codec)


def parse_datasource(text: str, name: str, where: str | None = None) -> Datasource:
    where = where or f"{name}.datasource"
    values: dict[str, str] = {}
    for key, value, line in _sections(text, where):
        problem = directive_problem(key, "datasource")
        if problem:
            raise DatafileError(f"{where}:{line}: {problem}")
        if key in values and key != "TOKEN":
            raise DatafileError(f"{where}:{line}: {key} given twice")
        values[key] = value
    if "SCHEMA" not in values:
        raise DatafileError(f"{where}: SCHEMA is mandatory")
    name = _versioned(name, values.get("VERSION"), where)
    columns = tuple(_parse_column(c, where) for c in split_top_level(values["SCHEMA"]))
    # One index a line, as Tinybird reads them (a trailing comma is allowed).
    indexes = tuple(
        re.sub(r"^INDEX\s+", "", line.strip().rstrip(","), flags=re.I).strip()
        for line in values.get("INDEXES", "").splitlines()
        if line.strip()
    )
    problem = engine_problems(
        values.get("ENGINE", "MergeTree"),
        values.get("ENGINE_VER"),
        values.get("ENGINE_SORTING_KEY"),
        {c.name: c.type for c in columns},
    )
    if problem:
        raise DatafileError(f"{where}: {problem}")
    return Datasource(
        name=name,
        columns=columns,
        engine=values.get("ENGINE", "MergeTree"),
        sorting_key=values.get("ENGINE_SORTING_KEY"),
        partition_key=values.get("ENGINE_PARTITION_KEY"),
        primary_key=values.get("ENGINE_PRIMARY_KEY"),
        ttl=values.get("ENGINE_TTL"),
        ver=values.get("ENGINE_VER"),
        settings=values.get("ENGINE_SETTINGS"),
        indexes=indexes,
        description=values.get("DESCRIPTION", ""),
    )


def _versioned(name: str, version: str | None, where: str) -> str:
    """``VERSION n`` names the resource ``<name>__v<n>``, as the Classic CLI (``tb push``) does:
    OpenStatus's ``audit_log.datasource`` with ``VERSION 0`` is the ``audit_log__v0`` its client uses."""
    if version is None:
        return name
    if not version.isdigit():
        raise DatafileError(f"{where}: VERSION must be a whole number, not {version!r}")
    return f"{name}__v{int(version)}"


def parse_pipe(text: str, name: str, where: str | None = None) -> Pipe:
    where = where or f"{name}.pipe"
    description, pipe_type, tokens = "", None, []
    nodes: list[dict[str, str | None]] = []
    for key, value, line in _sections(text, where):
        problem = directive_problem(key, "pipe")
        if problem:
            raise DatafileError(f"{where}:{line}: {problem}")
        if key == "NODE":
            nodes.append({"name": value, "sql": None, "description": "", "type": None})
        elif key in {"SQL", "DESCRIPTION", "TYPE"} and nodes:
            nodes[-1][key.lower()] = value
            if key == "TYPE":
                pipe_type = value.lower()
        elif key == "DESCRIPTION":
            description = value
        elif key == "TYPE":
            pipe_type = value.lower()
        elif key == "TOKEN":
            tokens.append(value)
        elif key == "VERSION":
            name = _versioned(name, value, f"{where}:{line}")
        elif key in {"TAGS", "INCLUDE", "CACHE"}:
            continue
        elif key == "SQL":
            raise DatafileError(f"{where}:{line}: SQL before any NODE")
    if not nodes:
        raise DatafileError(f"{where}: Pipe data file must have at least one node")
    if sum(1 for n in nodes if (n["type"] or "").lower() in {"endpoint", "materialized", "copy", "sink"}) > 1:
        raise DatafileError(f"{where}: Multiple non-standard nodes in pipe. There can only be one")
    built = []
    for n in nodes:
        if not n["sql"]:
            raise DatafileError(f"{where}: node {n['name']!r} has no SQL")
        problem = parameter_problem(str(n["sql"]))
        if problem:
            raise DatafileError(f"{where}: node {n['name']!r}: {problem}")
        built.append(Node(str(n["name"]), str(n["sql"]), str(n["description"] or ""), n["type"]))
    return Pipe(name, tuple(built), description, pipe_type, tuple(tokens))


def load_datasource(path: str | Path) -> Datasource:
    path = Path(path)
    return parse_datasource(path.read_text(encoding="utf-8"), path.stem, str(path))


def load_pipe(path: str | Path) -> Pipe:
    path = Path(path)
    return parse_pipe(path.read_text(encoding="utf-8"), path.stem, str(path))


def load_dir(*roots: str | Path) -> tuple[dict[str, Datasource], dict[str, Pipe]]:
    """Every ``*.datasource`` and ``*.pipe`` under the roots; a later root overrides a name."""
    datasources: dict[str, Datasource] = {}
    pipes: dict[str, Pipe] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise DatafileError(f"{root}: not a folder")
        for path in sorted(root.rglob("*.datasource")):
            ds = load_datasource(path)
            datasources[ds.name] = ds
        for path in sorted(root.rglob("*.pipe")):
            pipe = load_pipe(path)
            pipes[pipe.name] = pipe
    return datasources, pipes


def shipped_files() -> list[Path]:
    """The datafiles auditbird ships, relative to :data:`SHIPPED`."""
    return sorted(p.relative_to(SHIPPED) for p in SHIPPED.rglob("*") if p.suffix in {".datasource", ".pipe"})


def write_datafiles(dest: str | Path, files: Iterable[Path] | None = None) -> list[Path]:
    """Copy the shipped datafiles into ``dest`` as ``datasources/…`` and ``pipes/…``."""
    dest = Path(dest)
    written = []
    for rel in files if files is not None else shipped_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHIPPED / rel, target)
        written.append(target)
    return written
