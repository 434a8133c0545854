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
from collections.abc import Mapping, Sequence
from typing import Any

from tornado import template as tornado_template

from .template_functions import (
    FUNCTIONS,
    Param,
    ParameterError,
    Sql,
    TemplateError,
    quote_string,
)
from .template_program import (
    Break,
    Continue,
    Emit,
    For,
    If,
    Program,
    Run,
    Set,
    Stop,
    Text,
    walk,
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
    "Program",
    "walk",
]


def is_templated(sql: str) -> bool:
    return sql.lstrip().startswith("%")


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
            return [Text(value)] if value else []
        if kind is _NODE._Expression:
            if chunk.raw:
                raise TemplateError("Template Syntax Error: {% raw %} is not allowed in Tinybird templates")
            expr = self.expression(chunk.expression)
            for node in ast.walk(expr):
                # Tinybird's engine checks what {{ }} writes more narrowly than conditions: no
                # comparison, and/or or unary + there ({% if %} has them). Never looser than it.
                if isinstance(node, ast.Compare | ast.BoolOp | ast.UAdd):
                    raise TemplateError(
                        f"Template Syntax Error: Invalid expression type {type(node).__name__} in "
                        f"{{{{ }}}}: {_shown(chunk.expression)} (use {{% if %}} for conditions)"
                    )
            return [Emit(expr, chunk.expression)]
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
            return If(branches)
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
        return For(targets, iterable, checked[0][1], orelse)

    def statement(self, text: str) -> Any:
        if text in {"break", "continue"}:  # Tornado has checked that it is inside a loop
            return Break() if text == "break" else Continue()
        tree = self.parse(text, "exec", text)
        body = tree.body if isinstance(tree, ast.Module) else []
        if len(body) == 1 and isinstance(body[0], ast.Assign) and len(body[0].targets) == 1:
            assign = body[0]
            target = assign.targets[0]
            if isinstance(target, ast.Name):
                name = self.target_name(target.id, text)
                return Set(name, self.expression_node(assign.value, text))
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
    run = Run(program, values)
    try:
        run.run(program.body)
    except Stop:  # pragma: no cover - Tornado's parser refuses break/continue outside a loop
        raise TemplateError("Template Syntax Error: break or continue outside a loop") from None
    except RecursionError:
        raise TemplateError("Template Syntax Error: the template nests too deeply") from None
    return "".join(run.out).strip()


_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _shown(text: str, limit: int = 120) -> str:
    """A template fragment for an error message, cut short: errors stay small whatever was sent."""
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "…")
