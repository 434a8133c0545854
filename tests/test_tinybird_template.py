"""Pipe templates (Tornado, as in Tinybird) and the datafile parser: no server needed."""

from __future__ import annotations

import pytest

from auditbird.tinybird.datafiles import SHIPPED, DatafileError, load_dir, parse_datasource, parse_pipe
from auditbird.tinybird.local.engine import QueryError, check_select
from auditbird.tinybird.local.template import ParameterError, TemplateError, render


def r(body: str, **params: str) -> str:
    return render("%\n" + body, params)


def test_values_are_typed_and_quoted() -> None:
    assert r("{{ String(x) }}", x="it's") == "'it\\'s'"
    assert r("{{ String(x) }}", x="a\\' OR 1=1 --") == "'a\\\\\\' OR 1=1 --'"
    assert r("{{ String(x, 'dflt') }}") == "'dflt'"
    assert r("{{ Int64(n) }}", n="-42") == "-42"
    assert r("{{ Int32(n, 100) }}") == "100"
    assert r("{{ UInt8(n) }}", n="255") == "255"
    assert r("{{ Float64(f) }}", f="1.5") == "1.5"
    assert r("{{ Boolean(b) }}", b="true") == "1"
    assert r("{{ DateTime(d) }}", d="2024-01-31 02:00:00") == "'2024-01-31 02:00:00'"
    assert r("{{ Date(d) }}", d="2024-01-31") == "'2024-01-31'"
    assert r("{{ Array(a, 'String') }}", a="x,y'z") == "['x','y\\'z']"
    assert r("{{ Array(a, 'Int32', default='1,2') }}") == "[1,2]"
    assert r("{{ column(c, 'timestamp') }}") == "`timestamp`"


def test_raw_parameters_are_quoted_and_nothing_is_html_escaped() -> None:
    assert r("{{ x }}", x="1 OR 1=1") == "'1 OR 1=1'"
    assert r("SELECT 1 < 2 AND '&' = {{ String(x) }}", x="<b>") == "SELECT 1 < 2 AND '&' = '<b>'"


def test_control_flow_and_defined() -> None:
    body = "{% if defined(x) %}x={{ String(x) }}{% elif defined(y) %}y{% else %}none{% end %}"
    assert r(body, x="1") == "x='1'"
    assert r(body, y="1") == "y"
    assert r(body) == "none"
    assert r("{% if defined(o) and o == 'asc' %}ASC{% else %}DESC{% end %}", o="asc") == "ASC"


@pytest.mark.parametrize(
    ("body", "params", "named"),
    [
        ("{{ String(event_id, required=True) }}", {}, "event_id"),
        ("{{ Int64(since) }}", {"since": "yesterday"}, "since"),
        ("{{ Int8(n) }}", {"n": "300"}, "n"),
        ("{{ Float64(f) }}", {"f": "nan"}, "f"),
        ("{{ DateTime(d) }}", {"d": "2024-13-01 00:00:00"}, "d"),
        ("{{ Array(a, 'Int32') }}", {"a": "1,two"}, "a"),
        ("{{ column(c) }}", {"c": "a; DROP"}, "a; DROP"),
        ("{{ missing }}", {}, "missing"),
    ],
)
def test_parameter_errors_name_the_parameter(body: str, params: dict[str, str], named: str) -> None:
    with pytest.raises(ParameterError) as info:
        r(body, **params)
    assert named in str(info.value)


def test_template_syntax_errors() -> None:
    with pytest.raises(TemplateError):
        r("{% if %}")
    with pytest.raises(TemplateError):
        r("{{ 1 / 0 }}")


def test_a_plain_node_is_not_a_template() -> None:
    assert render("SELECT '{{ x }}'", {"x": "1"}) == "SELECT '{{ x }}'"


def test_check_select() -> None:
    assert check_select("SELECT 1 FORMAT CSVWithNames;") == ("SELECT 1", "CSVWithNames")
    assert check_select("WITH 1 AS a SELECT a") == ("WITH 1 AS a SELECT a", None)
    assert check_select("SELECT 'x; FORMAT CSV'") == ("SELECT 'x; FORMAT CSV'", None)
    for bad in ("SELECT 1; SELECT 2", "ALTER TABLE t DELETE WHERE 1", "SELECT * FROM url('http://x')", ""):
        with pytest.raises(QueryError):
            check_select(bad)


def test_shipped_datafiles_parse_and_declare_the_contract() -> None:
    datasources, pipes = load_dir(SHIPPED)
    ds = datasources["audit_log"]
    ingested = [c.name for c in ds.columns if c.ingested]
    assert ingested == [
        "uid",
        "workspace",
        "id",
        "action",
        "actor",
        "targets",
        "metadata",
        "timestamp",
        "version",
        "actor_id",
        "target_types",
        "target_ids",
        "ingested_at",
    ]
    assert all(c.jsonpath in (f"$.{c.name}", f"$.{c.name}[:]") for c in ds.columns if c.ingested)
    assert ds.column("targets").type == "String" and ds.column("targets").default == "'[]'"
    assert ds.column("metadata").nullable and ds.column("timestamp").type == "Int64"
    assert "uid" in (ds.sorting_key or "") and ds.engine == "MergeTree"
    assert not any(c.materialized for c in ds.columns)  # Tinybird's current CLI refuses them
    for pipe in pipes.values():
        assert pipe.type == "endpoint" and pipe.endpoint.sql.startswith("%\n")
        assert "first_copy" in pipe.endpoint.sql  # one copy per uid, the first stored


def test_datafile_errors_say_where() -> None:
    with pytest.raises(DatafileError, match="SCHEMA is mandatory"):
        parse_datasource("ENGINE MergeTree\n", "x")
    with pytest.raises(DatafileError, match="must have at least one node"):
        parse_pipe("DESCRIPTION >\n    hi\n", "p")
    with pytest.raises(DatafileError, match="x.pipe:2"):
        parse_pipe("NODE a\n  SQL >\n", "x")


@pytest.mark.parametrize(
    "body",
    [
        "SELECT {{ __import__('os').popen('id').read() }}",
        "SELECT {{ ''.__class__.__mro__ }}",
        "SELECT {{ String(x)[0] }}",
        "SELECT {{ (lambda: 1)() }}",
        "{% import os %}SELECT 1",
        "{% set x = 1 %}SELECT 1",
        "SELECT 1 {% if _tt_utf8 %}x{% end %}",
    ],
)
def test_a_template_cannot_reach_python_objects(body: str) -> None:
    # /v0/sql renders templates that clients send: only Tinybird's template shapes are allowed.
    with pytest.raises(TemplateError):
        render("%\n" + body, {})
