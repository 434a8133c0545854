"""Pipe templates, rendered as Tinybird renders them: Tornado templates, with nothing of Python.

A template is parsed by Tornado's own parser (``tornado.template._parse``: the same reader that
Tinybird's engine uses, so comments ``{# #}``, ``{% comment %}``, escapes ``{{!``/``{%!`` and
``{% whitespace %}`` mean what they mean there). Every node of that tree is then checked against
an allowlist, and every expression and statement in it is parsed into Python's :mod:`ast` and
checked against another:

- blocks: text, ``{{ expression }}``, ``{% if %}``/``{% elif %}``/``{% else %}``/``{% end %}``,
  ``{% for name(s) in expression %}`` (with ``{% break %}``/``{% continue %}``) and
  ``{% set name = expression %}``: what Tinybird documents. ``{% raw %}``, ``{% module %}``,
  ``{% autoescape %}``, ``{% import %}``, ``{% include %}``, ``{% extends %}``, ``{% block %}``,
  ``{% apply %}``, ``{% while %}`` and ``{% try %}`` are refused.
- expressions: literals (text, numbers, True/False/None), names (request parameters and
  ``{% set %}``/loop variables), calls of the functions in :data:`FUNCTIONS` by name, ``and``/``or``/
  ``not``, comparisons, ``+``/``-``/``*``, ``x if c else y``, list/tuple/dict displays. No attribute,
  subscript, lambda, comprehension, starred argument, f-string or name starting with ``_``.

The checked tree is then *interpreted* here, node by node: no Python code is generated, compiled or
executed, so there are no builtins, globals or frames to reach. Values are bounded (text and lists
at :data:`MAX_VALUE`, integers at 256 bits, :data:`MAX_STEPS` evaluation steps, :data:`MAX_OUTPUT`
characters), so no template can take unbounded time or memory.

Every value that reaches the SQL comes out of a typed function (``String``, ``Int64``, ``Array`` …)
that validates it and writes it as a safe ClickHouse literal; a raw request parameter printed with
``{{ name }}`` is written as a quoted string, so no parameter can ever break out of a literal.

>>> render("%\\nSELECT {{ String(x) }}, {{ Int32(n, 5) }}", {"x": "it's"})
"SELECT 'it\\\\'s', 5"
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tornado import template as tornado_template

from .template_functions import (
    FUNCTIONS,
    Param,
    ParameterError,
    Sql,
    TemplateError,
    Undefined,
    quote_string,
)

__all__ = [
    "render",
    "compile_template",
    "TemplateError",
    "ParameterError",
    "quote_string",
    "is_templated",
    "Sql",
    "FUNCTIONS",
]

MAX_STEPS = 200_000  # expression nodes evaluated and loop turns, per render
MAX_VALUE = 1 << 20  # characters of one text value, items of one list
MAX_OUTPUT = 4 << 20  # characters of rendered SQL
_MAX_INT_BITS = 256


def is_templated(sql: str) -> bool:
    return sql.lstrip().startswith("%")


# -- the checked program ------------------------------------------------------------------


@dataclass
class _Text:
    value: str


@dataclass
class _Emit:
    expr: ast.expr
    source: str


@dataclass
class _If:
    branches: list[tuple[ast.expr | None, list[Any]]]


@dataclass
class _For:
    targets: list[str]  # one name, or the names of a tuple target
    iterable: ast.expr
    body: list[Any]
    orelse: list[Any] = field(default_factory=list)


@dataclass
class _Set:
    name: str
    expr: ast.expr


class _Break:
    pass


class _Continue:
    pass


@dataclass
class Program:
    """A template that passed the checks: what :func:`render` interprets."""

    body: list[Any]
    assigned: frozenset[str]  # names bound by {% set %} or {% for %}: never read as parameters
    names: frozenset[str]  # every name the template reads (its parameters and variables)


class _NoAutoescape:
    """What ``_parse`` needs of a Template. ``{% autoescape X %}`` would make the engine call ``X``
    on every value, and it leaves no node in the tree, so it is refused while parsing."""

    @property
    def autoescape(self) -> None:
        return None

    @autoescape.setter
    def autoescape(self, value: str | None) -> None:
        raise TemplateError("Template Syntax Error: {% autoescape %} is not allowed in Tinybird templates")


_NODE = tornado_template  # the parser's node classes (private to Tornado, checked by the tests)
_CONTROL_ALLOWED = {"if", "for"}


def compile_template(body: str) -> Program:
    """Parse ``body`` (without its leading ``%``) with Tornado's parser and check every node."""
    found = _cache.get(body)
    if found is not None:
        return found
    reader = _NODE._TemplateReader("<pipe>", body, "all")
    try:
        chunks = _NODE._parse(reader, _NoAutoescape())  # type: ignore[arg-type]
    except _NODE.ParseError as exc:
        raise TemplateError(f"Template Syntax Error: {exc.message} (line {exc.lineno})") from None
    checker = _Checker()
    program_body = checker.chunks(chunks)
    program = Program(program_body, frozenset(checker.assigned), frozenset(checker.names))
    if len(body) <= _CACHE_BODY_LIMIT:  # pipes' templates, not every query a client sends
        if len(_cache) > 512:
            _cache.clear()
        _cache[body] = program
    return program


_cache: dict[str, Program] = {}
_CACHE_BODY_LIMIT = 64 << 10


class _Checker:
    def __init__(self) -> None:
        self.assigned: set[str] = set()
        self.names: set[str] = set()

    def chunks(self, node: Any) -> list[Any]:
        if not isinstance(node, _NODE._ChunkList):
            raise TemplateError(f"Template Syntax Error: unexpected {type(node).__name__}")
        out: list[Any] = []
        for chunk in node.chunks:
            out.extend(self.chunk(chunk))
        return out

    def chunk(self, chunk: Any) -> list[Any]:
        kind = type(chunk)
        if kind is _NODE._Text:
            value = chunk.value
            if "<pre>" not in value:  # as Tornado's own _Text.generate does
                value = tornado_template.filter_whitespace(chunk.whitespace, value)
            return [_Text(value)] if value else []
        if kind is _NODE._Expression:
            if chunk.raw:
                raise TemplateError("Template Syntax Error: {% raw %} is not allowed in Tinybird templates")
            return [_Emit(self.expression(chunk.expression), chunk.expression)]
        if kind is _NODE._ControlBlock:
            return [self.control(chunk)]
        if kind is _NODE._Statement:
            return [self.statement(chunk.statement)]
        if kind is _NODE._IntermediateControlBlock:
            raise TemplateError(f"Template Syntax Error: misplaced {{% {chunk.statement} %}}")
        # _Module, _IncludeBlock, _ExtendsBlock, _NamedBlock, _ApplyBlock, and anything a later
        # Tornado adds: not what Tinybird's templates allow.
        what = {
            "_Module": "module",
            "_IncludeBlock": "include",
            "_ExtendsBlock": "extends",
            "_NamedBlock": "block",
            "_ApplyBlock": "apply",
        }.get(kind.__name__, kind.__name__)
        raise TemplateError(f"Template Syntax Error: {{% {what} %}} is not allowed in Tinybird templates")

    def control(self, block: Any) -> Any:
        operator, _, rest = block.statement.partition(" ")
        if operator not in _CONTROL_ALLOWED:
            raise TemplateError(
                f"Template Syntax Error: {{% {operator} %}} is not allowed in Tinybird templates"
            )
        # Split the body at its {% elif %} / {% else %} markers (Tornado keeps them inline).
        sections: list[tuple[str, list[Any]]] = [(block.statement, [])]
        for chunk in block.body.chunks:
            if type(chunk) is _NODE._IntermediateControlBlock:
                sections.append((chunk.statement, []))
            else:
                sections[-1][1].append(chunk)
        checked = [(head, self.chunks(_NODE._ChunkList(chunks))) for head, chunks in sections]
        if operator == "if":
            branches: list[tuple[ast.expr | None, list[Any]]] = []
            for index, (head, body) in enumerate(checked):
                word, _, condition = head.partition(" ")
                if index == 0 or word == "elif":
                    branches.append((self.expression(condition), body))
                elif word == "else" and not condition.strip() and index == len(checked) - 1:
                    branches.append((None, body))
                else:
                    raise TemplateError(f"Template Syntax Error: misplaced {{% {head} %}}")
            return _If(branches)
        loop = self.parse(f"{block.statement}:\n pass", "exec", block.statement)
        statement = loop.body[0] if isinstance(loop, ast.Module) and len(loop.body) == 1 else None
        if not isinstance(statement, ast.For):
            raise TemplateError(f"Template Syntax Error: expected 'for name in ...': {rest!r}")
        targets = self.targets(statement.target, block.statement)
        iterable = self.expression_node(statement.iter, block.statement)
        orelse: list[Any] = []
        for head, body in checked[1:]:
            if head.strip() != "else" or orelse:
                raise TemplateError(f"Template Syntax Error: misplaced {{% {head} %}} in a for loop")
            orelse = body
        return _For(targets, iterable, checked[0][1], orelse)

    def statement(self, text: str) -> Any:
        if text in {"break", "continue"}:  # Tornado has checked that it is inside a loop
            return _Break() if text == "break" else _Continue()
        tree = self.parse(text, "exec", text)
        body = tree.body if isinstance(tree, ast.Module) else []
        if len(body) == 1 and isinstance(body[0], ast.Assign) and len(body[0].targets) == 1:
            assign = body[0]
            target = assign.targets[0]
            if isinstance(target, ast.Name):
                name = self.target_name(target.id, text)
                return _Set(name, self.expression_node(assign.value, text))
        raise TemplateError(f"Template Syntax Error: only {{% set name = expression %}} is allowed: {text!r}")

    def targets(self, target: ast.expr, text: str) -> list[str]:
        if isinstance(target, ast.Name):
            return [self.target_name(target.id, text)]
        if isinstance(target, ast.Tuple) and all(isinstance(e, ast.Name) for e in target.elts):
            return [self.target_name(e.id, text) for e in target.elts if isinstance(e, ast.Name)]
        raise TemplateError(f"Template Syntax Error: a loop variable must be a name: {text!r}")

    def target_name(self, name: str, text: str) -> str:
        if name.startswith("_") or name in FUNCTIONS:
            raise TemplateError(f"Template Syntax Error: cannot assign to {name!r}: {text!r}")
        self.assigned.add(name)
        self.names.add(name)
        return name

    def parse(self, text: str, mode: str, shown: str) -> ast.AST:
        try:
            return ast.parse(text.strip() if mode == "eval" else text, mode=mode)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            message = exc.msg if isinstance(exc, SyntaxError) else "too deeply nested or too large"
            raise TemplateError(f"Template Syntax Error: {message}: {_shown(shown)}") from None

    def expression(self, text: str) -> ast.expr:
        if not text.strip():
            raise TemplateError("Template Syntax Error: an empty expression")
        tree = self.parse(text, "eval", text)
        assert isinstance(tree, ast.Expression)
        return self.expression_node(tree.body, text)

    def expression_node(self, node: ast.expr, text: str) -> ast.expr:
        called = {id(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
        for child in ast.walk(node):
            self.check_node(child, text)
            # A function's name is only ever called, never handed around as a value.
            if isinstance(child, ast.Name) and child.id in FUNCTIONS and id(child) not in called:
                raise TemplateError(f"Template Syntax Error: {child.id!r} can only be called: {_shown(text)}")
        return node

    def check_node(self, node: ast.AST, text: str) -> None:
        def refuse(why: str) -> TemplateError:
            return TemplateError(f"Template Syntax Error: {why} is not allowed: {_shown(text)}")

        if isinstance(node, ast.Constant):
            if not (node.value is None or isinstance(node.value, bool | int | float | str)):
                raise refuse(f"the literal {node.value!r}")
        elif isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise refuse(f"the name {node.id!r}")
            if not isinstance(node.ctx, ast.Load):
                raise refuse("assignment here")
            self.names.add(node.id)
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                shown = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
                raise refuse(f"calling {shown!r} (only Tinybird's template functions can be called)")
            if any(isinstance(a, ast.Starred) for a in node.args) or any(
                k.arg is None for k in node.keywords
            ):
                raise refuse("* or ** in a call")
        elif isinstance(node, ast.keyword):
            if node.arg is None or node.arg.startswith("_"):
                raise refuse("this keyword argument")
        elif isinstance(node, ast.Dict):
            if any(key is None for key in node.keys):
                raise refuse("** in a dict")
        elif not isinstance(node, _ALLOWED_NODES):
            raise refuse(type(node).__name__)


_ALLOWED_NODES = (
    ast.Load,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
    ast.IfExp,
    ast.List,
    ast.Tuple,
    ast.Dict,
)


# -- rendering: an interpreter over the checked program ------------------------------------


class _Stop(Exception):
    def __init__(self, kind: str) -> None:
        self.kind = kind


class _Unbound:
    """A {% set %}/loop variable not assigned yet (Python would raise UnboundLocalError)."""


class _Run:
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
            if isinstance(node, _Text):
                self.write(node.value)
            elif isinstance(node, _Emit):
                self.write(_emit(self.eval(node.expr)))
            elif isinstance(node, _If):
                for test, branch in node.branches:
                    if test is None or _truth(self.eval(test)):
                        self.run(branch)
                        break
            elif isinstance(node, _For):
                self.loop(node)
            elif isinstance(node, _Set):
                self.vars[node.name] = self.eval(node.expr)
            elif isinstance(node, _Break):
                raise _Stop("break")
            elif isinstance(node, _Continue):
                raise _Stop("continue")
            else:  # pragma: no cover - the checker builds nothing else
                raise TemplateError(f"unexpected template node {type(node).__name__}")

    def loop(self, node: _For) -> None:
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
            except _Stop as stop:
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


def _emit(value: Any) -> str:
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


def render(sql: str, params: Mapping[str, str | Sequence[str]]) -> str:
    """Render a node's SQL with the request's parameters; a plain (non ``%``) node is returned as is.

    Raises :class:`ParameterError` (a 400 naming the parameter) or :class:`TemplateError`.
    """
    if not is_templated(sql):
        return sql
    program = compile_template(sql.lstrip()[1:])
    values: dict[str, Any] = {}
    for key, value in params.items():
        if not _IDENT.match(key) or key in FUNCTIONS:
            continue
        if isinstance(value, list | tuple):
            value = ",".join(value)
        values[key] = Param(str(value), key)
    run = _Run(program, values)
    try:
        run.run(program.body)
    except _Stop:  # pragma: no cover - Tornado's parser refuses break/continue outside a loop
        raise TemplateError("Template Syntax Error: break or continue outside a loop") from None
    except RecursionError:
        raise TemplateError("Template Syntax Error: the template nests too deeply") from None
    return "".join(run.out).strip()


_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def walk(program: Program) -> Iterator[ast.AST]:
    """Every expression node of a checked program (for tests and audits)."""
    stack: list[Any] = list(program.body)
    while stack:
        node = stack.pop()
        if isinstance(node, _Emit | _Set):
            yield from ast.walk(node.expr)
        elif isinstance(node, _If):
            for test, body in node.branches:
                if test is not None:
                    yield from ast.walk(test)
                stack.extend(body)
        elif isinstance(node, _For):
            yield from ast.walk(node.iterable)
            stack.extend(node.body)
            stack.extend(node.orelse)


def _shown(text: str, limit: int = 120) -> str:
    """A template fragment for an error message, cut short: errors stay small whatever was sent."""
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "…")
