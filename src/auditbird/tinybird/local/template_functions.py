"""Tinybird's template functions: every value a pipe template writes into SQL goes through one.

Each typed function (``String``, ``Int64``, ``Array`` …) validates a request parameter and writes it
as a safe ClickHouse literal; the others (``defined``, ``column``, ``sql_and``, ``split_to_array``,
``date_diff_in_*`` …) are the helpers Tinybird documents. :data:`FUNCTIONS` is the whole set a
template may call: :mod:`.template` refuses a call of any other name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

__all__ = [
    "FUNCTIONS",
    "TemplateError",
    "ParameterError",
    "Sql",
    "Param",
    "Undefined",
    "quote_string",
]


class TemplateError(ValueError):
    """The template itself is broken (syntax or a name it does not know)."""


class ParameterError(ValueError):
    """A request parameter is missing or of the wrong type: the message names it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class Sql(str):
    """SQL text produced by a template function: written out as it is."""


class Param(str):
    """A request parameter's raw value; remembers its name for error messages."""

    name: str

    def __new__(cls, value: str, name: str) -> Param:
        obj = super().__new__(cls, value)
        obj.name = name
        return obj


class Undefined:
    """A parameter the request did not send. Falsy; printing it is an error naming it."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        raise ParameterError(self.name, f"Template Syntax Error: missing parameter '{self.name}'")

    def __repr__(self) -> str:
        return f"Undefined({self.name!r})"


def quote_string(value: str) -> Sql:
    """A ClickHouse string literal: backslash, quote and NUL escaped."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0")
    return Sql(f"'{escaped}'")


def is_templated(sql: str) -> bool:
    return sql.lstrip().startswith("%")


# -- the typed functions ------------------------------------------------------------------

_INT_RANGES = {
    f"{'U' if unsigned else ''}Int{bits}": (
        (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    )
    for bits in (8, 16, 32, 64, 128, 256)
    for unsigned in (False, True)
}
_INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")


def _name(value: Any) -> str:
    return getattr(value, "name", "") or "?"


def _resolve(value: Any, default: Any, required: bool, type_name: str) -> tuple[bool, Any]:
    """(present, value): the request's value, else the default; raise if required and absent."""
    if isinstance(value, Undefined) or value is None:
        if required:
            name = _name(value)
            raise ParameterError(name, f"The parameter '{name}' is required ({type_name})")
        return default is not None, default
    return True, value


def _int_function(type_name: str) -> Callable[..., Sql]:
    low, high = _INT_RANGES[type_name]

    def convert(x: Any = None, default: Any = None, *args: Any, required: bool = False, **kw: Any) -> Sql:
        present, value = _resolve(x, kw.pop("default_value", default), required, type_name)
        if not present:
            return Sql("NULL")
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and _INT_RE.match(value))
        ):
            raise ParameterError(
                _name(x), f"Error validating '{value}' to type {type_name} in parameter '{_name(x)}'"
            )
        number = int(value)
        if not low <= number <= high:
            raise ParameterError(_name(x), f"'{_name(x)}' is out of range for {type_name}: {number}")
        return Sql(str(number))

    convert.__name__ = type_name
    return convert


def _float_function(type_name: str) -> Callable[..., Sql]:
    def convert(x: Any = None, default: Any = None, *args: Any, required: bool = False, **kw: Any) -> Sql:
        present, value = _resolve(x, default, required, type_name)
        if not present:
            return Sql("NULL")
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            raise ParameterError(
                _name(x), f"Error validating '{value}' to type {type_name} in parameter '{_name(x)}'"
            ) from None
        if not math.isfinite(number):
            raise ParameterError(_name(x), f"'{_name(x)}' must be a finite number")
        return Sql(repr(number))

    convert.__name__ = type_name
    return convert


def String(x: Any = None, default: Any = None, *args: Any, required: bool = False, **kw: Any) -> Sql:  # noqa: N802
    present, value = _resolve(x, default, required, "String")
    if not present:
        return Sql("NULL")
    return quote_string(str(value))


_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,9})?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _temporal(type_name: str, pattern: re.Pattern[str], parse: Callable[[str], object]) -> Callable[..., Sql]:
    def convert(x: Any = None, default: Any = None, *args: Any, required: bool = False, **kw: Any) -> Sql:
        present, value = _resolve(x, default, required, type_name)
        if not present:
            return Sql("NULL")
        if isinstance(value, datetime | date):
            value = value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
        text = str(value).strip()
        try:
            if not pattern.match(text):
                raise ValueError
            parse(text)
        except ValueError:
            raise ParameterError(
                _name(x), f"Error validating '{text}' to type {type_name} in parameter '{_name(x)}'"
            ) from None
        return quote_string(text.replace("T", " "))

    convert.__name__ = type_name
    return convert


def _parse_datetime(text: str) -> object:
    return datetime.fromisoformat(text.replace(" ", "T"))


def Boolean(x: Any = None, default: Any = None, *args: Any, required: bool = False, **kw: Any) -> Sql:  # noqa: N802
    present, value = _resolve(x, default, required, "Boolean")
    if not present:
        return Sql("NULL")
    text = str(value).strip().lower()
    if text in {"1", "true"}:
        return Sql("1")
    if text in {"0", "false"}:
        return Sql("0")
    raise ParameterError(_name(x), f"Error validating '{value}' to type Boolean in parameter '{_name(x)}'")


def _scalar_functions() -> dict[str, Callable[..., Sql]]:
    funcs: dict[str, Callable[..., Sql]] = {name: _int_function(name) for name in _INT_RANGES}
    funcs["Int"] = funcs["Integer"] = _int_function("Int32")
    funcs["Float32"] = _float_function("Float32")
    funcs["Float64"] = _float_function("Float64")
    funcs["String"] = String
    funcs["Boolean"] = Boolean
    funcs["DateTime"] = _temporal("DateTime", _DATETIME_RE, _parse_datetime)
    funcs["DateTime64"] = _temporal("DateTime64", _DATETIME_RE, _parse_datetime)
    funcs["Date"] = _temporal("Date", _DATE_RE, date.fromisoformat)
    return funcs


_SCALARS = _scalar_functions()


def Array(  # noqa: N802
    x: Any = None, _type: str = "String", default: Any = None, *args: Any, required: bool = False, **kw: Any
) -> Sql:
    """``Array(name, 'Int32', default='1,2')``: comma separated values -> ``[1,2]``."""
    present, value = _resolve(x, default, required, f"Array({_type})")
    if not present:
        return Sql("[]")
    convert = _SCALARS.get(_type)
    if convert is None:
        raise TemplateError(f"Array: unknown type {_type!r}")
    if isinstance(value, str):
        items: Sequence[Any] = [] if value == "" else value.split(",")
    elif isinstance(value, list | tuple):
        items = value
    else:
        items = [value]
    name = _name(x)
    rendered = [convert(Param(str(item), name)) for item in items]
    return Sql("[" + ",".join(rendered) + "]")


def defined(x: Any = None) -> bool:
    return not isinstance(x, Undefined) and x is not None


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def column(x: Any = None, default: Any = None) -> Sql:
    """A column name from a parameter: an identifier only, written back-quoted."""
    value = default if isinstance(x, Undefined) or x is None else x
    if value is None:
        raise ParameterError(_name(x), f"missing column name parameter '{_name(x)}'")
    text = str(value)
    if not _IDENTIFIER.match(text):
        raise ParameterError(_name(x), f"'{text}' is not a valid column name")
    return Sql(".".join(f"`{part}`" for part in text.split(".")))


def columns(x: Any = None, default: Any = None) -> Sql:
    value = default if isinstance(x, Undefined) or x is None else x
    if value is None:
        raise ParameterError(_name(x), f"missing columns parameter '{_name(x)}'")
    return Sql(", ".join(column(Param(part.strip(), _name(x))) for part in str(value).split(",")))


_SQL_AND_OPS = {"": "=", "in": "IN", "not_in": "NOT IN", "gt": ">", "lt": "<", "gte": ">=", "lte": "<="}


def sql_and(**conditions: Any) -> Sql:
    """``sql_and(a=x, b__in=[..], c__gte=y)``: ANDed conditions over the defined values, with
    Tinybird's operators (``in``, ``not_in``, ``gt``, ``lt``, ``gte``, ``lte``; none is ``=``)."""
    parts = []
    for key, value in conditions.items():
        if not defined(value):
            continue
        name, _, op = key.rpartition("__") if "__" in key else (key, "", "")
        if op not in _SQL_AND_OPS:
            raise TemplateError(f"sql_and: operator {op!r} is not supported; use {', '.join(_SQL_AND_OPS)}")
        col = column(Param(name, name))
        if op in {"in", "not_in"}:
            items = value.split(",") if isinstance(value, str) else list(value)
            literal = "[" + ",".join(_literal(v) for v in items) + "]"
        else:
            literal = _literal(value)
        parts.append(f"{col} {_SQL_AND_OPS[op]} {literal}")
    return Sql(" AND ".join(parts) or "1")


def _literal(value: Any) -> str:
    """A value from a typed function is SQL already; anything else becomes a quoted string."""
    if isinstance(value, Sql):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return quote_string(str(value))
    return repr(value)


def _error(message: Any = "error", code: Any = 400) -> Sql:
    raise ParameterError("", str(message))


def _custom_error(payload: Any, code: Any = 400) -> Sql:
    if isinstance(payload, dict) and "error" in payload:
        payload = payload["error"]
    raise ParameterError("", str(payload))


def symbol(x: Any = None, quote: Any = "`") -> Sql:
    """A name written between ``quote`` characters (back-quotes by default), escaped."""
    if quote not in {"`", '"'}:
        raise TemplateError(f'symbol: quote must be ` or ", not {quote!r}')
    if isinstance(x, Undefined) or x is None:
        raise ParameterError(_name(x), f"missing symbol parameter '{_name(x)}'")
    text = str(x).replace("\\", "\\\\").replace(quote, "\\" + quote).replace("\0", "\\0")
    return Sql(f"{quote}{text}{quote}")


def split_to_array(x: Any = None, default: Any = "", separator: Any = ",") -> list[str]:
    """``'a, b'`` -> ``['a', 'b']`` (items stripped), as Tinybird splits; for ``{% for %}``."""
    value = default if isinstance(x, Undefined) or x is None else x
    if not isinstance(value, str) or not isinstance(separator, str) or not separator:
        raise TemplateError("split_to_array needs a text parameter (or default) and a non-empty separator")
    parts = [part.strip() for part in value.split(separator)]
    return [Param(part, _name(x)) for part in parts] if isinstance(value, Param) else parts


def enumerate_with_last(items: Any) -> list[tuple[bool, Any]]:
    """``[(is_last, item), …]``: ``{% for last, x in enumerate_with_last(xs) %}``."""
    if not isinstance(items, list | tuple):
        raise TemplateError("enumerate_with_last needs a list, e.g. split_to_array(x)")
    return [(i == len(items) - 1, item) for i, item in enumerate(items)]


_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


def _date_diff(unit: str, default_format: str) -> Callable[..., Any]:
    def diff(
        d0: Any = None,
        d1: Any = None,
        date_format: Any = default_format,
        default: Any = None,
        backup_date_format: Any = None,
        none_if_error: Any = False,
    ) -> Any:
        if isinstance(d0, Undefined) or isinstance(d1, Undefined) or d0 is None or d1 is None:
            return default if default else 0
        formats = [f for f in (date_format, backup_date_format) if isinstance(f, str)]
        parsed = []
        for value in (d0, d1):
            for fmt in formats:
                try:
                    parsed.append(datetime.strptime(str(value), fmt))
                    break
                except ValueError:
                    continue
            else:
                if none_if_error:
                    return None
                raise ParameterError(
                    _name(value), f"date_diff_in_{unit}: '{value}' does not match the format {date_format!r}"
                )
        return int(abs((parsed[1] - parsed[0]).total_seconds()) / _SECONDS[unit])

    diff.__name__ = f"date_diff_in_{unit}"
    return diff


def sql_unescape(x: Any = None, what: Any = "") -> Sql:
    """A quoted string for LIKE patterns. Tinybird escapes ``%`` in strings and this undoes it for
    ``what``; :func:`quote_string` never escapes ``%``, so the quoted string is already the answer."""
    if isinstance(x, Undefined) or x is None:
        raise ParameterError(_name(x), f"missing parameter '{_name(x)}'")
    return quote_string(str(x))


def _len(x: Any) -> int:
    if not isinstance(x, str | list | tuple | dict):
        raise TemplateError("len() needs a text or a list")
    return len(x)


def _minmax(pick: Callable[..., Any]) -> Callable[..., Any]:
    def choose(*args: Any) -> Any:
        items = args[0] if len(args) == 1 else args
        if not isinstance(items, list | tuple) or not items:
            raise TemplateError(f"{pick.__name__}() needs values")
        try:
            return pick(items)
        except TypeError:
            raise TemplateError(f"{pick.__name__}(): values of different types") from None

    choose.__name__ = pick.__name__
    return choose


def _int(x: Any = 0) -> int:
    try:
        return int(str(x) if isinstance(x, str) else x)
    except (TypeError, ValueError):
        raise ParameterError(_name(x), f"'{_name(x)}': {x!r} is not an integer") from None


def _float(x: Any = 0.0) -> float:
    try:
        number = float(x)
    except (TypeError, ValueError):
        raise ParameterError(_name(x), f"'{_name(x)}': {x!r} is not a number") from None
    if not math.isfinite(number):
        raise ParameterError(_name(x), f"'{_name(x)}' must be a finite number")
    return number


def _list(x: Any = ()) -> list[Any]:
    if not isinstance(x, str | list | tuple):
        raise TemplateError("list() needs a text or a list")
    if isinstance(x, Param):  # the characters of a parameter are still the parameter's: quoted
        return [Param(c, x.name) for c in x]
    return list(x)


# The functions Tinybird's templates may call (its documented set, with Python's len/min/max/int/
# float/list that Tinybird's engine also allows). Anything else is refused before rendering.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    **_SCALARS,
    "Array": Array,
    "defined": defined,
    "column": column,
    "columns": columns,
    "symbol": symbol,
    "sql_and": sql_and,
    "split_to_array": split_to_array,
    "enumerate_with_last": enumerate_with_last,
    "day_diff": _date_diff("days", "%Y-%m-%d"),
    **{f"date_diff_in_{unit}": _date_diff(unit, "%Y-%m-%d %H:%M:%S") for unit in _SECONDS},
    "date_diff_in_days": _date_diff("days", "%Y-%m-%d"),
    "sql_unescape": sql_unescape,
    "error": _error,
    "custom_error": _custom_error,
    "len": _len,
    "min": _minmax(min),
    "max": _minmax(max),
    "int": _int,
    "float": _float,
    "list": _list,
}
