"""A checked pipe template as a small program, and the interpreter that renders it.

:mod:`.template` builds a :class:`Program` from Tornado's parse tree once every node and expression
passed its allowlists; :class:`Run` walks it. No Python code is generated, compiled or executed, so
there are no builtins, globals or frames to reach; the only callables are :data:`FUNCTIONS`. Values
are bounded (text and lists at :data:`MAX_VALUE`, integers at 256 bits, :data:`MAX_STEPS`
evaluation steps, :data:`MAX_OUTPUT` characters), so no template takes unbounded time or memory.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .template_functions import FUNCTIONS, Param, ParameterError, Sql, TemplateError, Undefined, quote_string

__all__ = ["Program", "Run", "Stop", "walk", "emit", "MAX_STEPS", "MAX_VALUE", "MAX_OUTPUT"]

MAX_STEPS = 200_000  # expression nodes evaluated and loop turns, per render
MAX_VALUE = 1 << 20  # characters of one text value, items of one list
MAX_OUTPUT = 4 << 20  # characters of rendered SQL
_MAX_INT_BITS = 256


# -- the checked program ------------------------------------------------------------------


@dataclass
class Text:
    value: str


@dataclass
class Emit:
    expr: ast.expr
    source: str


@dataclass
class If:
    branches: list[tuple[ast.expr | None, list[Any]]]


@dataclass
class For:
    targets: list[str]  # one name, or the names of a tuple target
    iterable: ast.expr
    body: list[Any]
    orelse: list[Any] = field(default_factory=list)


@dataclass
class Set:
    name: str
    expr: ast.expr


class Break:
    pass


class Continue:
    pass


@dataclass
class Program:
    """A template that passed the checks: what :func:`render` interprets."""

    body: list[Any]
    assigned: frozenset[str]  # names bound by {% set %} or {% for %}: never read as parameters
    names: frozenset[str]  # every name the template reads (its parameters and variables)


# -- rendering: an interpreter over the checked program ------------------------------------


class Stop(Exception):
    def __init__(self, kind: str) -> None:
        self.kind = kind


class _Unbound:
    """A {% set %}/loop variable not assigned yet (Python would raise UnboundLocalError)."""


class Run:
    def __init__(self, program: Program, params: Mapping[str, Any]) -> None:
        self.vars: dict[str, Any] = {name: _Unbound for name in program.assigned}
        self.params = params
        self.steps = 0
        self.size = 0
        self.out: list[str] = []

    def tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateError(f"Template too costly: more than {MAX_STEPS} steps to render")

    def run(self, body: list[Any]) -> None:
        for node in body:
            self.tick()
            if isinstance(node, Text):
                self.write(node.value)
            elif isinstance(node, Emit):
                self.write(emit(self.eval(node.expr)))
            elif isinstance(node, If):
                for test, branch in node.branches:
                    if test is None or _truth(self.eval(test)):
                        self.run(branch)
                        break
            elif isinstance(node, For):
                self.loop(node)
            elif isinstance(node, Set):
                self.vars[node.name] = self.eval(node.expr)
            elif isinstance(node, Break):
                raise Stop("break")
            elif isinstance(node, Continue):
                raise Stop("continue")
            else:  # pragma: no cover - the checker builds nothing else
                raise TemplateError(f"unexpected template node {type(node).__name__}")

    def loop(self, node: For) -> None:
        items = self.eval(node.iterable)
        if not isinstance(items, list | tuple | str):
            raise TemplateError("Template Syntax Error: {% for %} needs a list, e.g. split_to_array(x)")
        for item in items:
            self.tick()
            if len(node.targets) == 1:
                self.vars[node.targets[0]] = item
            else:
                if not isinstance(item, list | tuple) or len(item) != len(node.targets):
                    raise TemplateError(f"Template Syntax Error: cannot unpack {item!r} into {node.targets}")
                self.vars.update(zip(node.targets, item, strict=True))
            try:
                self.run(node.body)
            except Stop as stop:
                if stop.kind == "break":
                    return
        self.run(node.orelse)

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_OUTPUT:
            raise TemplateError(f"Template too costly: the SQL would exceed {MAX_OUTPUT} characters")
        self.out.append(text)

    def name(self, name: str) -> Any:
        if name in self.vars:
            value = self.vars[name]
            if value is _Unbound:
                raise TemplateError(f"Template Syntax Error: '{name}' is used before it is set")
            return value
        if name in self.params:
            return self.params[name]
        return Undefined(name)

    def eval(self, node: ast.expr) -> Any:
        self.tick()
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            function = FUNCTIONS[node.func.id]
            args = [self.eval(a) for a in node.args]
            kwargs = {k.arg: self.eval(k.value) for k in node.keywords if k.arg is not None}
            try:
                return _bounded(function(*args, **kwargs))
            except (ParameterError, TemplateError):
                raise
            except TypeError as exc:
                raise TemplateError(f"Template Syntax Error: {node.func.id}(): {exc}") from None
        if isinstance(node, ast.BoolOp):
            value: Any = None
            for operand in node.values:
                value = self.eval(operand)
                if _truth(value) == isinstance(node.op, ast.Or):
                    return value
            return value
        if isinstance(node, ast.UnaryOp):
            operand = self.eval(node.operand)
            if isinstance(node.op, ast.Not):
                return not _truth(operand)
            return _arith(node.op, 0, operand)
        if isinstance(node, ast.BinOp):
            return _arith(node.op, self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.Compare):
            left = self.eval(node.left)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self.eval(right_node)
                if not _compare(op, left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            return self.eval(node.body) if _truth(self.eval(node.test)) else self.eval(node.orelse)
        if isinstance(node, ast.List | ast.Tuple):
            items = [self.eval(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Dict):
            return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=True) if k}
        raise TemplateError(f"unexpected expression {type(node).__name__}")  # the checker allows no other


_PLAIN = (str, int, float, bool, type(None), list, tuple, dict, Undefined)


def _truth(value: Any) -> bool:
    if not isinstance(value, _PLAIN):  # pragma: no cover - values are only ever of these types
        raise TemplateError(f"unexpected value {type(value).__name__}")
    return bool(value)


def _bounded(value: Any) -> Any:
    if isinstance(value, str | list | tuple | dict) and len(value) > MAX_VALUE:
        raise TemplateError(f"Template too costly: a value of more than {MAX_VALUE} characters or items")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _MAX_INT_BITS:
        raise TemplateError(f"Template too costly: an integer beyond {_MAX_INT_BITS} bits")
    if not isinstance(value, _PLAIN):
        raise TemplateError(f"unexpected value {type(value).__name__}")
    return value


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple) else 1


def _arith(op: ast.operator | ast.unaryop, left: Any, right: Any) -> Any:
    for value in (left, right):
        if isinstance(value, Undefined):
            raise ParameterError(value.name, f"Template Syntax Error: missing parameter '{value.name}'")
        if isinstance(value, dict):
            raise TemplateError("Template Syntax Error: no arithmetic on a dict")
    if isinstance(op, ast.Mult):
        count = right if isinstance(left, str | list | tuple) else left
        if isinstance(count, int) and max(_sized(left), _sized(right)) * max(count, 0) > MAX_VALUE:
            raise TemplateError(f"Template too costly: a value of more than {MAX_VALUE} characters or items")
    operation: Callable[[Any, Any], Any] = {
        ast.Add: lambda a, b: a + b,
        ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b,
        ast.USub: lambda a, b: -b,
        ast.UAdd: lambda a, b: +b,
    }[type(op)]
    try:
        result = operation(left, right)
    except TypeError as exc:
        raise TemplateError(f"Template Syntax Error: {exc}") from None
    if isinstance(result, str) and not isinstance(result, Sql):
        # Text built from a parameter stays a parameter: printed, it is quoted.
        names = [v.name for v in (left, right) if isinstance(v, Param)]
        if names:
            result = Param(result, names[0])
    return _bounded(result)


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    try:
        if isinstance(op, ast.Eq):
            return bool(left == right)
        if isinstance(op, ast.NotEq):
            return bool(left != right)
        if isinstance(op, ast.Is):
            return left is right
        if isinstance(op, ast.IsNot):
            return left is not right
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(right, str | list | tuple | dict):
                raise TemplateError("Template Syntax Error: 'in' needs a text, list or dict on the right")
            found = left in right
            return found if isinstance(op, ast.In) else not found
        ordering: dict[type, Callable[[Any, Any], bool]] = {
            ast.Lt: lambda a, b: a < b,
            ast.LtE: lambda a, b: a <= b,
            ast.Gt: lambda a, b: a > b,
            ast.GtE: lambda a, b: a >= b,
        }
        return bool(ordering[type(op)](left, right))
    except TypeError as exc:
        raise TemplateError(f"Template Syntax Error: {exc}") from None


def emit(value: Any) -> str:
    """What ``{{ … }}`` writes: SQL from a typed function as is, a raw parameter quoted, anything
    else as Tornado writes it (``str(value)``)."""
    if isinstance(value, Undefined):
        str(value)  # raises, naming the parameter
    if isinstance(value, Param):
        return quote_string(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list | tuple | dict):
        raise TemplateError(
            "Template Syntax Error: a list cannot be written into SQL as is; use Array(...) or a loop"
        )
    return str(value)


def walk(program: Program) -> Iterator[ast.AST]:
    """Every expression node of a checked program (for tests and audits)."""
    stack: list[Any] = list(program.body)
    while stack:
        node = stack.pop()
        if isinstance(node, Emit | Set):
            yield from ast.walk(node.expr)
        elif isinstance(node, If):
            for test, body in node.branches:
                if test is not None:
                    yield from ast.walk(test)
                stack.extend(body)
        elif isinstance(node, For):
            yield from ast.walk(node.iterable)
            stack.extend(node.body)
            stack.extend(node.orelse)
