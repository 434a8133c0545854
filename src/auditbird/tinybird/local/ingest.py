"""NDJSON rows -> rows for a datasource, or quarantine: what the Events API does with each line.

Each line is parsed, every column is read at its ``json:$.path`` and checked against its
ClickHouse type. A row that fits becomes one JSONEachRow line for ClickHouse; one that does not
(bad JSON, a wrong type, a required column missing) goes to ``<datasource>_quarantine`` with the
raw line and the reasons, as Tinybird does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ..datafiles import Column, Datasource, split_top_level

__all__ = ["RowChecker", "Quarantined", "quarantine_table_sql", "QUARANTINE_SUFFIX"]

QUARANTINE_SUFFIX = "_quarantine"
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

    def split(self, text: str) -> tuple[list[str], list[Quarantined]]:
        good: list[str] = []
        bad: list[Quarantined] = []
        for line in text.splitlines():
            if not line.strip():
                continue
            result = self.check_line(line)
            if isinstance(result, str):
                good.append(result)
            else:
                bad.append(result)
        return good, bad

    def quarantine_rows(self, rows: list[Quarantined], import_id: str, now: str) -> list[str]:
        out = []
        for q in rows:
            row: dict[str, Any] = {
                "c__error_column": q.columns,
                "c__error": q.errors,
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
