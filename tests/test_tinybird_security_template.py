"""Property test for pipe templates (issue 10.1): whatever token soup a client sends to /v0/sql,
a template the checker accepts never reaches an attribute, a subscript, a builtin or the OS.

Hypothesis builds templates from the grammar of Tornado's template engine (expressions, every
block kind, comments, ``{{!``/``{%!`` escapes, ``{% raw %}``, whitespace-control look-alikes,
unbalanced braces) with random Python expressions inside (attributes, subscripts, lambdas,
comprehensions, dunders, builtins, Tinybird's functions, parameters). For each accepted one:

- every expression node in the checked program is of an allowlisted kind, every name is a
  parameter or variable (no ``_`` prefix) and every call is of a Tinybird template function;
- rendering it, with our interpreter and with Tornado's own generated code, raises no Python audit
  event (import, open, exec, compile, os.*, subprocess.*): nothing left the sandbox;
- where the template does not build text out of parameters (where we deliberately keep the result
  quoted), our output equals Tornado's: we render as the engine Tinybird uses does.
"""

from __future__ import annotations

import _strptime  # noqa: F401  (imported now, so strptime in day_diff imports nothing while audited)
import ast
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tornado import template as tornado_template

from auditbird.tinybird.local.template import (
    FUNCTIONS,
    ParameterError,
    TemplateError,
    compile_template,
    render,
    walk,
)
from auditbird.tinybird.local.template_functions import Param, Undefined

_seen: list[str] = []
_watching = False
_allowed_code: list[Any] = []  # the one code object Tornado's own generate() may exec
_FORBIDDEN_EVENTS = ("import", "open", "exec", "compile", "os.", "subprocess.", "socket.", "ctypes.", "code.")


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _watching and event.startswith(_FORBIDDEN_EVENTS):
        if event == "exec" and args and any(args[0] is code for code in _allowed_code):
            return
        _seen.append(event)


sys.addaudithook(_hook)  # audit hooks cannot be removed: this one only records while _watching


@contextmanager
def _audited() -> Iterator[list[str]]:
    global _watching
    _seen.clear()
    _watching = True
    try:
        yield _seen
    finally:
        _watching = False


PARAMS = {"p": "it's", "q": "1", "xs": "a,b,c", "d0": "2024-01-01", "d1": "2024-02-01"}
NAMES = ["p", "q", "xs", "d0", "d1", "nope", "v", "last"]
EVIL_NAMES = ["__import__", "__builtins__", "_tt_utf8", "globals", "open", "eval", "getattr", "type", "os"]
ATTRS = ["__class__", "__globals__", "__mro__", "__subclasses__", "upper", "read", "f_back", "gi_frame"]

leaf = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(EVIL_NAMES),
    st.sampled_from(["1", "0", "-2", "3.5", "None", "True", "'a'", "''", '"b"', "b'x'", "...", "1j"]),
    st.sampled_from(sorted(FUNCTIONS)),
)


def _compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    fn = st.one_of(st.sampled_from(sorted(FUNCTIONS)), st.sampled_from(EVIL_NAMES), inner)
    return st.one_of(
        st.builds(lambda f, a: f"{f}({', '.join(a)})", fn, st.lists(inner, max_size=3)),
        st.builds(lambda f, a, k: f"{f}({a}, default={k})", fn, inner, inner),
        st.builds(lambda a, b: f"{a}.{b}", inner, st.sampled_from(ATTRS)),
        st.builds(lambda a, b: f"{a}[{b}]", inner, inner),
        st.builds(
            lambda a, op, b: f"({a} {op} {b})", inner, st.sampled_from(["+", "-", "*", "**", "/", "%"]), inner
        ),
        st.builds(lambda a, op, b: f"({a} {op} {b})", inner, st.sampled_from(["and", "or"]), inner),
        st.builds(
            lambda a, op, b: f"({a} {op} {b})",
            inner,
            st.sampled_from(["==", "!=", "<", ">=", "in", "not in"]),
            inner,
        ),
        st.builds(lambda a: f"not {a}", inner),
        st.builds(lambda a, b, c: f"({a} if {b} else {c})", inner, inner, inner),
        st.builds(lambda a: f"[{', '.join(a)}]", st.lists(inner, max_size=3)),
        st.builds(lambda a, b: f"{{{a}: {b}}}", inner, inner),
        st.builds(lambda a: f"(lambda: {a})()", inner),
        st.builds(lambda a: f"[c for c in {a}]", inner),
        st.builds(lambda a: f"String(*{a})", inner),
        st.builds(lambda a: f"f'{{{a}}}'", inner),
        st.builds(lambda a: f"(v := {a})", inner),
    )


def _safe_compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    fn = st.sampled_from(sorted(FUNCTIONS))
    return st.one_of(
        st.builds(lambda f, a: f"{f}({', '.join(a)})", fn, st.lists(inner, max_size=3)),
        st.builds(lambda f, a, k: f"{f}({a}, default={k})", fn, inner, inner),
        st.builds(
            lambda a, op, b: f"({a} {op} {b})", inner, st.sampled_from(["+", "-", "*", "and", "or"]), inner
        ),
        st.builds(
            lambda a, op, b: f"({a} {op} {b})",
            inner,
            st.sampled_from(["==", "!=", "<", "in", "not in"]),
            inner,
        ),
        st.builds(lambda a: f"not {a}", inner),
        st.builds(lambda a, b, c: f"({a} if {b} else {c})", inner, inner, inner),
        st.builds(lambda a: f"[{', '.join(a)}]", st.lists(inner, max_size=3)),
    )


safe_leaf = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(["1", "0", "-2", "3.5", "None", "True", "'a'", "''", "'2024-01-01'"]),
)
# Half the expressions are built from allowed pieces only, so that many templates are accepted and
# rendered; the other half mixes in everything an attacker would try.
expression = st.one_of(
    st.recursive(safe_leaf, _safe_compound, max_leaves=6), st.recursive(leaf, _compound, max_leaves=6)
)
name = st.sampled_from(["v", "last", "p", "_x", "String", "x.y", "v, last"])

token = st.one_of(
    st.sampled_from(
        ["SELECT ", "1", " ", "\n", "{", "}", "#", "%", "!", "-", "'", "{{!", "{%!", "-}}", "%}"]
    ),
    st.builds(lambda e: "{{ " + e + " }}", expression),
    st.builds(lambda e: "{{- " + e + " -}}", expression),
    st.builds(lambda e: "{% if " + e + " %}", expression),
    st.builds(lambda e: "{% elif " + e + " %}", expression),
    st.just("{% else %}"),
    st.just("{% end %}"),
    st.builds(lambda n, e: "{% for " + n + " in " + e + " %}", name, expression),
    st.builds(lambda n, e: "{% set " + n + " = " + e + " %}", name, expression),
    st.builds(lambda e: "{# " + e + " #}", expression),
    st.builds(lambda e: "{% comment " + e + " %}", expression),
    st.builds(lambda e: "{% raw " + e + " %}", expression),
    st.builds(lambda e: "{% module " + e + " %}", expression),
    st.builds(lambda e: "{% autoescape " + e + " %}", expression),
    st.builds(lambda e: "{% while " + e + " %}", expression),
    st.builds(lambda e: "{% apply " + e + " %}", expression),
    st.sampled_from(
        [
            "{% whitespace oneline %}",
            "{% whitespace all %}",
            "{% include 'x' %}",
            "{% extends 'x' %}",
            "{% block b %}",
            "{% try %}",
            "{% except %}",
            "{% break %}",
            "{% continue %}",
            "{% import os %}",
            "{% from os import system %}",
            "{%- if 1 -%}",
            "{% autoescape None %}",
        ]
    ),
)
safe_expression = st.recursive(safe_leaf, _safe_compound, max_leaves=6)
safe_token = st.one_of(
    st.sampled_from(["SELECT ", "1", " ", "\n", "{", "}", "#", "'", "{{!", "{%!", "{% else %}", "{% end %}"]),
    st.builds(lambda e: "{{ " + e + " }}", safe_expression),
    st.builds(lambda e: "{% if " + e + " %}", safe_expression),
    st.builds(lambda e: "{% elif " + e + " %}", safe_expression),
    st.builds(
        lambda n, e: "{% for " + n + " in " + e + " %}", st.sampled_from(["v", "last, v"]), safe_expression
    ),
    st.builds(lambda n, e: "{% set " + n + " = " + e + " %}", st.sampled_from(["v", "w"]), safe_expression),
    st.sampled_from(["{% break %}", "{% continue %}", "{# {{ 1 #}", "{% comment x %}"]),
)
# Soups of any token, and soups of allowed tokens only (many of which are accepted and run).
templates = st.one_of(
    st.lists(token, min_size=1, max_size=12), st.lists(safe_token, min_size=1, max_size=12)
).map("".join)

_ALLOWED = (
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Call,
    ast.keyword,
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


def _tornado_template(body: str) -> tornado_template.Template:
    return tornado_template.Template(body, name="<pipe>", autoescape=None, whitespace="all")


def _tornado_render(tmpl: tornado_template.Template, names: frozenset[str]) -> str:
    """The same template through Tornado's own code generation, with no builtins but the two its
    generated code needs, and every free name given as our Undefined."""
    namespace: dict[str, Any] = {n: Undefined(n) for n in names}
    namespace.update({k: Param(v, k) for k, v in PARAMS.items()})
    namespace.update(FUNCTIONS)
    from auditbird.tinybird.local.template_program import emit

    def utf8(value: Any) -> bytes:  # Tornado keeps text chunks as bytes
        return value if isinstance(value, bytes) else emit(value).encode("utf-8")

    namespace["_tt_utf8"] = utf8
    namespace["__builtins__"] = {"isinstance": isinstance, "str": str}
    return tmpl.generate(**namespace).decode("utf-8").strip()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(templates)
def test_no_accepted_template_reaches_python(body: str) -> None:
    try:
        program = compile_template(body)
    except TemplateError:
        return
    for node in walk(program):
        assert isinstance(node, _ALLOWED), ast.dump(node)
        if isinstance(node, ast.Name):
            assert not node.id.startswith("_"), node.id
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS, ast.dump(node)
    ours: str | None = None
    with _audited() as events, suppress(TemplateError, ParameterError):
        ours = render("%" + body, PARAMS)
    assert events == [], (body, events)
    builds_text = any(
        isinstance(n, ast.BinOp) or (isinstance(n, ast.Call) and getattr(n.func, "id", "") == "list")
        for n in walk(program)
    )
    tmpl = _tornado_template(body)  # compiles its generated code: not audited
    _allowed_code[:] = [tmpl.compiled]
    with _audited() as events:
        try:
            theirs: str | None = _tornado_render(tmpl, program.names)
        except Exception:  # any error of the engine's own run counts as "no output"
            theirs = None
    assert events == [], (body, events)
    if ours is not None and not builds_text:
        assert ours == theirs, body


@pytest.mark.parametrize(
    "body",
    [
        "SELECT {{ String(p) }} {% if defined(q) and q == '1' %}a{% elif defined(p) %}b{% else %}c{% end %}",
        "{% set c = 'name' %}{{ column(c) }}, {{ columns(xs) }}",
        "{% for last, v in enumerate_with_last(split_to_array(xs)) %}"
        "{{ v }}{% if not last %},{% end %}{% end %}",
        "{{ day_diff(d0, d1) }} {{ Int32(q, 5) }} {{ Array(xs, 'String') }} {{ sql_and(a=p, b__in=xs) }}",
        "{% whitespace oneline %}SELECT\n  {{ p }}  {# hidden #} {% comment x %} {{! y }}",
    ],
)
def test_documented_templates_render_as_tornado_renders_them(body: str) -> None:
    program = compile_template(body)
    assert render("%" + body, PARAMS) == _tornado_render(_tornado_template(body), program.names)


# -- Tinybird's own engine as the oracle -------------------------------------------------------------

# Tinybird's CLI ships its template engine (tinybird/sql_template.py, a Tornado fork with its own
# checks); scripts/test-deps.d/20-tinybird-clis.sh installs it into this venv.
_TB_PYTHON = Path(__file__).resolve().parents[1] / ".cache" / "tb-classic-venv" / "bin" / "python"
_ORACLE = r"""
import json, sys
from tinybird.sql_template import render_sql_template
for line in sys.stdin:
    item = json.loads(line)
    try:
        render_sql_template("%\n" + item["t"], item["p"])
        out = {"ok": True}
    except BaseException as exc:
        out = {"ok": False, "error": type(exc).__name__ + ": " + str(exc)}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
"""
# What Tinybird's engine says when it refuses a construct (rather than failing on a value).
_REFUSALS = ("Invalid", "forbidden", "unknown operator", "is not a valid function")


@pytest.fixture(scope="module")
def tinybird_engine() -> Iterator[Callable[[str], dict[str, Any]]]:
    if not _TB_PYTHON.exists():
        pytest.skip("Tinybird's CLI is not installed (scripts/test-deps.d/20-tinybird-clis.sh)")
    proc = subprocess.Popen(
        [str(_TB_PYTHON), "-c", _ORACLE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None

    def ask(body: str) -> dict[str, Any]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"t": body, "p": PARAMS}) + "\n")
        proc.stdin.flush()
        return dict(json.loads(proc.stdout.readline()))

    yield ask
    proc.stdin.close()
    proc.wait(timeout=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(templates)
def test_we_are_never_looser_than_tinybirds_engine(
    tinybird_engine: Callable[[str], dict[str, Any]], body: str
) -> None:
    """Every template we accept, Tinybird's own engine accepts too (it may still fail on a value)."""
    try:
        compile_template(body)
    except TemplateError:
        return
    answer = tinybird_engine(body)
    assert answer["ok"] or not any(r in answer["error"] for r in _REFUSALS), (body, answer)


def test_the_oracle_refuses_what_issue_10_used(tinybird_engine: Callable[[str], dict[str, Any]]) -> None:
    attack = "SELECT {{ String(defined.__globals__['builtins'].__import__('os').popen('id').read()) }}"
    answer = tinybird_engine(attack)
    assert not answer["ok"] and "Invalid" in answer["error"]
