"""Pipe templates, rendered as Tinybird renders them: they are Tornado templates.

Rendering uses :mod:`tornado.template` with autoescaping off (it is SQL, not HTML) and with
Tinybird's template functions in the namespace. Every value that reaches the SQL comes out of a
typed function (``String``, ``Int64``, ``Array`` …) that validates it and writes it as a safe
ClickHouse literal; a raw request parameter printed with ``{{ name }}`` is written as a quoted
string, so no parameter can ever break out of a literal.

>>> render("%\\nSELECT {{ String(x) }}, {{ Int32(n, 5) }}", {"x": "it's"})
"SELECT 'it\\\\'s', 5"
"""

from __future__ import annotations

import ast
import builtins
import math
import re
import types
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from tornado import template as tornado_template

__all__ = ["render", "TemplateError", "ParameterError", "quote_string", "is_templated", "Sql"]


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


def sql_and(**conditions: Any) -> Sql:
    """``sql_and(a=x, b__in=[..])``: ANDed equality / IN conditions over the defined values."""
    parts = []
    for key, value in conditions.items():
        if not defined(value):
            continue
        name, _, op = key.partition("__")
        col = column(Param(name, name))
        if op == "in":
            items = value.split(",") if isinstance(value, str) else list(value)
            parts.append(f"{col} IN [{','.join(quote_string(str(v)) for v in items)}]")
        else:
            parts.append(f"{col} = {quote_string(str(value))}")
    return Sql(" AND ".join(parts) or "1")


def _error(message: str = "error", code: int = 400) -> Sql:
    raise ParameterError("", str(message))


FUNCTIONS: dict[str, Any] = {
    **_SCALARS,
    "Array": Array,
    "defined": defined,
    "column": column,
    "columns": columns,
    "sql_and": sql_and,
    "error": _error,
    "custom_error": lambda payload, code=400: _error(str(payload), code),
}


def _emit(value: Any) -> bytes:
    """What ``{{ … }}`` writes: SQL from a typed function as is; a raw parameter quoted."""
    if isinstance(value, Param):
        value = quote_string(value)
    elif isinstance(value, Undefined):
        str(value)  # raises, naming the parameter
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


# -- compiling and rendering --------------------------------------------------------------

_cache: dict[str, tuple[tornado_template.Template, frozenset[str]]] = {}


def _names(code: types.CodeType) -> set[str]:
    out = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out |= _names(const)
    return out


def _compile(sql: str) -> tuple[tornado_template.Template, frozenset[str]]:
    found = _cache.get(sql)
    if found is None:
        try:
            tmpl = tornado_template.Template(sql, name="<pipe>", autoescape=None, whitespace="all")
        except tornado_template.ParseError as exc:
            raise TemplateError(f"Template Syntax Error: {exc}") from None
        found = (tmpl, frozenset(_names(tmpl.compiled)))
        if len(_cache) > 512:
            _cache.clear()
        _cache[sql] = found
    return found


_BUILTINS = frozenset(dir(builtins))
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


# Templates are Python expressions, and /v0/sql renders templates a client sends, so only the
# shapes Tinybird's templates use are allowed: names, literals, calls of names, and/or/not and
# comparisons. No attribute access, subscripts or dunders: nothing can reach Python's objects.
_TAG = re.compile(r"\{\{(.*?)\}\}|\{%-?\s*(\w+)(.*?)-?%\}", re.S)
_BLOCKS = {"if", "elif", "else", "end"}
_SAFE_NODES = (
    ast.Expression,
    ast.Call,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.keyword,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.List,
    ast.Tuple,
)
_SAFE_BUILTINS = {"isinstance": isinstance, "str": str, "len": len, "int": int, "float": float}


def _check_expression(text: str) -> None:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise TemplateError(f"Template Syntax Error: {exc.msg}: {text.strip()!r}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _SAFE_NODES):
            raise TemplateError(
                f"Template Syntax Error: {type(node).__name__} is not allowed: {text.strip()!r}"
            )
        if isinstance(node, ast.Call) and not isinstance(node.func, ast.Name):
            raise TemplateError(f"Template Syntax Error: only functions can be called: {text.strip()!r}")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise TemplateError(f"Template Syntax Error: name {node.id!r} is not allowed")


def check_template(body: str) -> None:
    """Refuse any template construct beyond what Tinybird's pipe templates use."""
    for match in _TAG.finditer(body):
        expression, block, rest = match.group(1), match.group(2), match.group(3)
        if expression is not None:
            _check_expression(expression)
        elif block not in _BLOCKS:
            raise TemplateError(f"Template Syntax Error: {{% {block} %}} is not supported")
        elif block in {"if", "elif"}:
            _check_expression(rest)


def render(sql: str, params: Mapping[str, str | Sequence[str]]) -> str:
    """Render a node's SQL with the request's parameters; a plain (non ``%``) node is returned as is.

    Raises :class:`ParameterError` (a 400 naming the parameter) or :class:`TemplateError`.
    """
    if not is_templated(sql):
        return sql
    body = sql.lstrip()[1:]
    check_template(body)
    tmpl, names = _compile(body)
    namespace: dict[str, Any] = {"__builtins__": _SAFE_BUILTINS}
    for name in names:
        if name.startswith("_tt_") or name in FUNCTIONS or name in _BUILTINS:
            continue
        namespace[name] = Undefined(name)
    for key, value in params.items():
        if not _IDENT.match(key) or key in FUNCTIONS:
            continue
        if isinstance(value, list | tuple):
            value = ",".join(value)
        namespace[key] = Param(str(value), key)
    namespace.update(FUNCTIONS)
    namespace["_tt_utf8"] = _emit
    try:
        out = tmpl.generate(**namespace)
    except (ParameterError, TemplateError):
        raise
    except Exception as exc:  # an error in the template's own Python expressions
        raise TemplateError(f"Template Syntax Error: {type(exc).__name__}: {exc}") from None
    return out.decode("utf-8").strip()
