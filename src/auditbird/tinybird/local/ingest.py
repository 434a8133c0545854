"""NDJSON rows -> rows for a datasource, or quarantine: what the Events API does with each line.

Each line is parsed, every column is read at its ``json:$.path`` and checked against its
ClickHouse type. A row that fits becomes one JSONEachRow line for ClickHouse; one that does not
(bad JSON, a wrong type, a required column missing) goes to ``<datasource>_quarantine`` with the
raw line and the reasons, as Tinybird does.

The common case is made cheap (:meth:`RowChecker.split`): when every column is a top-level
``$.name`` path of a plain String or integer type, a line whose parsed values already are what
ClickHouse would store (strings for String columns, in-range integers for Int columns, null only
where the column is Nullable, left out only where that means the same thing to ClickHouse) is
passed to ClickHouse as it came, without being re-serialised. Every other line takes the full
check, so what is ingested and what is quarantined, and why, is the same either way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic_core import from_json

from ..datafiles import Column, Datasource, split_top_level

__all__ = ["RowChecker", "Quarantined", "Split", "quarantine_table_sql", "QUARANTINE_SUFFIX"]

QUARANTINE_SUFFIX = "_quarantine"
# Bounds on what a quarantined row stores about itself, so bad rows cannot multiply a body's size.
MAX_ERRORS_PER_ROW = 32
MAX_ERROR_CHARS = 1000
_MISSING = object()
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class _Bad(ValueError):
    pass


@dataclass
class Quarantined:
    line: str
    columns: list[str]
    errors: list[str]
    values: dict[str, Any]


Check = Callable[[Any], Any]


def _unwrap(col_type: str, wrapper: str) -> str | None:
    prefix = wrapper + "("
    if col_type.startswith(prefix) and col_type.endswith(")"):
        return col_type[len(prefix) : -1].strip()
    return None


_INT = re.compile(r"^(U?)Int(8|16|32|64|128|256)$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?$")


def _int_check(unsigned: bool, bits: int) -> Check:
    low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)

    def check(value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(f"expected an integer, got {_show(value)}")
        if not low <= value <= high:
            raise _Bad(f"{value} is out of range for {'U' if unsigned else ''}Int{bits}")
        return value

    return check


def _float_check(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(f"expected a number, got {_show(value)}")
    return value


def _string_check(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):  # Tinybird stores nested JSON in a String column as text
        return _dumps(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _Bad(f"expected a string, got {_show(value)}")


def _bool_check(value: Any) -> Any:
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    raise _Bad(f"expected a boolean, got {_show(value)}")


def _datetime_check(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _DATETIME.match(value):
        try:
            datetime.fromisoformat(value.replace(" ", "T").replace("Z", "+00:00"))
            return value
        except ValueError:
            pass
    raise _Bad(f"expected a DateTime ('YYYY-MM-DD hh:mm:ss' or seconds), got {_show(value)}")


def _date_check(value: Any) -> Any:
    if isinstance(value, str):
        try:
            date.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise _Bad(f"expected a Date ('YYYY-MM-DD'), got {_show(value)}")


def _any(value: Any) -> Any:
    return value


def _show(value: Any) -> str:
    text = _dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def type_check(col_type: str) -> tuple[bool, Check]:
    """(nullable, check) for a ClickHouse type; unknown types are left to ClickHouse."""
    inner = _unwrap(col_type, "Nullable")
    if inner is not None:
        return True, type_check(inner)[1]
    for wrapper in ("LowCardinality", "SimpleAggregateFunction"):
        inner = _unwrap(col_type, wrapper)
        if inner is not None:
            if wrapper == "SimpleAggregateFunction":
                inner = split_top_level(inner)[-1]
            return type_check(inner)
    inner = _unwrap(col_type, "Array")
    if inner is not None:
        item_nullable, item = type_check(inner)

        def check_array(value: Any) -> Any:
            if not isinstance(value, list):
                raise _Bad(f"expected an array, got {_show(value)}")
            return [None if v is None and item_nullable else item(v) for v in value]

        return False, check_array
    match = _INT.match(col_type)
    if match:
        return False, _int_check(match.group(1) == "U", int(match.group(2)))
    if col_type in {"Float32", "Float64"} or col_type.startswith("Decimal"):
        return False, _float_check
    if col_type in {"String", "UUID"} or col_type.startswith(("FixedString", "Enum")):
        return False, _string_check
    if col_type in {"Bool", "Boolean"}:
        return False, _bool_check
    if col_type.startswith(("DateTime", "DateTime64")):
        return False, _datetime_check
    if col_type in {"Date", "Date32"}:
        return False, _date_check
    return False, _any


_PATH_TOKEN = re.compile(r"\.([^.\[\]]+)|\['([^']*)'\]|\[\"([^\"]*)\"\]|\[(:)\]|\[(\d+)\]")


def parse_jsonpath(path: str) -> tuple[str | int, ...]:
    """``$.a.b`` / ``$.a['b c']`` / ``$.items[:]`` / ``$.xs[0]`` -> keys; ``$`` -> ()."""
    text = path.strip()
    if not text.startswith("$"):
        raise ValueError(f"jsonpath {path!r} must start with $")
    keys: list[str | int] = []
    pos = 1
    while pos < len(text):
        match = _PATH_TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"cannot read jsonpath {path!r}")
        key, quoted, dquoted, _all, index = match.groups()
        if index is not None:
            keys.append(int(index))
        elif key is not None or quoted is not None or dquoted is not None:
            keys.append(key if key is not None else (quoted if quoted is not None else dquoted))
        pos = match.end()
    return tuple(keys)


# Characters other readers may take for line breaks. Lines are split on "\n" only; a line holding
# one of these takes the full check (json.loads), so what ClickHouse is handed is re-serialised.
_ASCII_BREAKS = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e")
_OTHER_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# pydantic's Rust JSON parser, about three times as fast as json.loads on audit rows, only ever
# decides whether a line is taken as it came: it accepts no line json.loads refuses and reads every
# line both accept the same; a line it refuses (e.g. one with a lone surrogate, which json.loads
# takes) gets the full check, with json.loads.
_parse = from_json


def _fast_strings(fast: tuple[tuple[str, bool, bool, int, int, bool], ...]) -> Callable[[Any], int]:
    """A function giving, for a parsed row that passes ``fast`` (see :class:`RowChecker`), how many
    JSON strings its line holds if it has no duplicate key (its keys and its string values); -1 for
    a row that does not pass. The checks are written out, one statement a column: twice as fast as
    a loop over them."""
    code = ["def strings(obj):", "    if type(obj) is not dict:", "        return -1", "    n = len(obj)"]
    code.append("    get = obj.get")
    for key, nullable, is_int, low, high, may_leave_out in fast:
        others = ["v is None"] * nullable + ["v is _MISSING"] * may_leave_out
        code.append(f"    v = get({key!r}, _MISSING)")
        if is_int:
            fits = " or ".join([f"type(v) is int and {low} <= v <= {high}", *others])
            code += [f"    if not ({fits}):", "        return -1"]
        else:
            code += ["    if type(v) is str:", "        n += 1"]
            code += [f"    elif not ({' or '.join(others)}):" if others else "    else:", "        return -1"]
    code.append("    return n")
    scope: dict[str, Any] = {"_MISSING": _MISSING}
    exec("\n".join(code), scope)  # noqa: S102 - keys are repr()s, bounds are ints
    strings: Callable[[Any], int] = scope["strings"]
    return strings


def _fast_kind(col_type: str) -> tuple[bool, bool, int, int] | None:
    """(nullable, is_int, low, high) for a type whose values ClickHouse reads from JSON exactly as
    the full check would pass them (String, LowCardinality(String), Int*/UInt*, Nullable of those);
    None for any other type."""
    nullable = False
    inner = _unwrap(col_type, "LowCardinality")
    col_type = inner if inner is not None else col_type
    inner = _unwrap(col_type, "Nullable")
    if inner is not None:
        nullable, col_type = True, inner
    if col_type == "String":
        return nullable, False, 0, 0
    match = _INT.match(col_type)
    if match:
        bits = int(match.group(2))
        low, high = (0, 2**bits - 1) if match.group(1) == "U" else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return nullable, True, low, high
    return None


@dataclass
class Split:
    """A batch of NDJSON, checked: JSONEachRow ``good`` lines, ``bad`` rows for the quarantine.

    ``raw[i]`` is true when ``good[i]`` is the line as it came (not re-serialised), which
    ClickHouse reads as it would read the full check's line for it. Should ClickHouse refuse a
    batch anyway, :meth:`RowChecker.recheck` first turns them into the full check's lines, so the
    row-by-row fallback sees what it always saw. ``as_came``: every line of the text is one of
    those, so the text itself is the JSONEachRow to insert.
    """

    good: list[str]
    raw: list[bool]
    bad: list[Quarantined]
    as_came: bool


@dataclass(frozen=True)
class _Field:
    name: str
    keys: tuple[str | int, ...]
    nullable: bool
    has_default: bool
    check: Check


class RowChecker:
    """Splits NDJSON into JSONEachRow lines ClickHouse will take, and quarantined rows."""

    def __init__(self, datasource: Datasource) -> None:
        self.datasource = datasource
        fields = []
        for col in datasource.columns:
            if not col.ingested or col.jsonpath is None:
                continue
            nullable, check = type_check(col.type)
            fields.append(
                _Field(col.name, parse_jsonpath(col.jsonpath), nullable, col.default is not None, check)
            )
        self.fields = tuple(fields)
        self.columns = tuple(f.name for f in self.fields)
        # (key, nullable, is_int, low, high, may be left out) per column, when every line that
        # passes them can go to ClickHouse as it came; None when some column needs the full check.
        fast: list[tuple[str, bool, bool, int, int, bool]] | None = []
        for f in self.fields:
            kind = _fast_kind(next(c.type for c in datasource.columns if c.name == f.name))
            if fast is None or kind is None or f.keys != (f.name,):
                fast = None
                continue
            nullable, is_int, low, high = kind
            # Left out, ClickHouse stores the DEFAULT (or NULL if there is none and it is Nullable);
            # the full check does the same, except for a Nullable column with a DEFAULT (NULL).
            fast.append((f.name, nullable, is_int, low, high, nullable != f.has_default))
        self._strings = _fast_strings(tuple(fast)) if fast else None

    @staticmethod
    def _get(obj: Any, keys: tuple[str | int, ...]) -> Any:
        for key in keys:
            if isinstance(key, int):
                if not isinstance(obj, list) or key >= len(obj):
                    return _MISSING
                obj = obj[key]
            else:
                if not isinstance(obj, dict) or key not in obj:
                    return _MISSING
                obj = obj[key]
        return obj

    def check_line(self, line: str) -> str | Quarantined:
        try:
            obj = json.loads(line)
        except ValueError as exc:
            return Quarantined(line, ["__line"], [f"invalid JSON: {exc}"], {})
        if not isinstance(obj, dict):
            return Quarantined(line, ["__line"], ["a row must be a JSON object"], {})
        out: dict[str, Any] = {}
        bad_cols: list[str] = []
        errors: list[str] = []
        for f in self.fields:
            value = self._get(obj, f.keys) if f.keys else obj
            if value is _MISSING or value is None:
                if f.nullable:
                    out[f.name] = None
                elif not f.has_default:
                    bad_cols.append(f.name)
                    errors.append(
                        f"column '{f.name}' is required (not Nullable, no DEFAULT) and "
                        + ("is null" if value is None else "is missing")
                    )
                continue
            try:
                out[f.name] = f.check(value) if f.keys else _dumps(value)
            except _Bad as exc:
                bad_cols.append(f.name)
                errors.append(f"column '{f.name}': {exc}")
        if errors:
            raw = {f.name: _raw(self._get(obj, f.keys) if f.keys else obj) for f in self.fields}
            return Quarantined(line, bad_cols, errors, raw)
        return _dumps(out)

    def split(self, text: str) -> Split:
        """Check every line of ``text``: NDJSON, one row a line; blank lines are skipped."""
        lines = text.split("\n")
        if lines and not lines[-1]:
            lines.pop()
        breaks = any(b in text for b in _ASCII_BREAKS) or (
            not text.isascii() and _OTHER_BREAKS.search(text) is not None
        )
        strings = self._strings
        if strings is not None and not breaks:
            # The common case, all at once: every line parses and passes, and the text holds just
            # the strings of the rows (so no line has a duplicate key, see _split_lines). When all
            # its backslashes escape quotes, the text has no \\ (cheaper to tell than to look for).
            escaped = text.count('\\"')
            if escaped == text.count("\\") or "\\\\" not in text:
                try:
                    rows = list(map(_parse, lines))
                except ValueError:
                    rows = []
                if rows:
                    counts = list(map(strings, rows))
                    if min(counts) >= 0 and text.count('"') - escaped == 2 * sum(counts):
                        return Split(lines, [True] * len(lines), [], True)
        return self._split_lines(lines, breaks)

    def _split_lines(self, lines: list[str], breaks: bool) -> Split:
        """Line by line: each line is taken as it came or gets the full check."""
        good: list[str] = []
        raw: list[bool] = []
        bad: list[Quarantined] = []
        parse, strings = _parse, self._strings
        as_came = True
        for line in lines:
            if strings is not None:
                try:
                    obj = parse(line)
                except ValueError:  # not JSON (or not to this parser): the full check tells why
                    obj = None
                # The line must hold exactly the strings of ``obj``: a duplicate key (which
                # ClickHouse may read as its first value, Python as its last) adds one. Without
                # a \\ in the line, each " not after a \ opens or closes a string.
                n = strings(obj)
                if (
                    n >= 0
                    and line.count('"') - line.count('\\"') == 2 * n
                    and "\\\\" not in line
                    and not (breaks and _OTHER_BREAKS.search(line))
                ):
                    good.append(line)
                    raw.append(True)
                    continue
            as_came = False
            # One line is one row: NDJSON breaks only at \n (a CR before it is CRLF). Never
            # str.splitlines(): U+0085, U+2028, U+2029 are valid inside a JSON string.
            part = line[:-1] if line.endswith("\r") else line
            if not part.strip():
                continue
            result = self.check_line(part)
            if isinstance(result, str):
                good.append(result)
                raw.append(False)
            else:
                bad.append(result)
        return Split(good, raw, bad, as_came)

    def recheck(self, split: Split) -> None:
        """Rewrite the good lines taken as they came as the full check writes them (for a batch
        ClickHouse refused, so the row-by-row fallback sees what it always saw)."""
        good: list[str] = []
        for line, as_came in zip(split.good, split.raw, strict=True):
            result = self.check_line(line) if as_came else line
            if isinstance(result, str):
                good.append(result)
            else:  # cannot happen: the fast check only passes what the full check passes
                split.bad.append(result)
        split.good, split.raw, split.as_came = good, [False] * len(good), False

    def quarantine_rows(self, rows: list[Quarantined], import_id: str, now: str) -> list[str]:
        out = []
        for q in rows:
            row: dict[str, Any] = {
                "c__error_column": q.columns[:MAX_ERRORS_PER_ROW],
                "c__error": [
                    e if len(e) <= MAX_ERROR_CHARS else e[: MAX_ERROR_CHARS - 3] + "..." for e in q.errors
                ][:MAX_ERRORS_PER_ROW],
                "c__import_id": import_id,
                "insertion_date": now,
                "c__line": q.line,
            }
            for name in self.columns:
                row[name] = q.values.get(name)
            out.append(_dumps(row))
        return out


def _raw(value: Any) -> str | None:
    if value is _MISSING or value is None:
        return None
    return value if isinstance(value, str) else _dumps(value)


def quarantine_table_sql(datasource: Datasource, columns: tuple[Column, ...] | None = None) -> str:
    """The ``<name>_quarantine`` table: error columns, the raw line, each column as text."""
    cols = [c for c in (columns or datasource.columns) if c.ingested and c.jsonpath is not None]
    parts = [
        "`c__error_column` Array(String)",
        "`c__error` Array(String)",
        "`c__import_id` Nullable(String)",
        "`insertion_date` DateTime",
        "`c__line` String",
    ] + [f"`{c.name}` Nullable(String)" for c in cols]
    return (
        f"CREATE TABLE IF NOT EXISTS `{datasource.name}{QUARANTINE_SUFFIX}` (\n    "
        + ",\n    ".join(parts)
        + "\n)\nENGINE = MergeTree()\nORDER BY insertion_date"
    )
