"""The /v0/sql guard (issue 10.2) on chDB in-process, and the token/Host/log helpers (10.3).

The guard decides on ClickHouse's own AST, so these tests hold it to ClickHouse's own catalogues:
every table function chDB has is refused, every denied function family is absent from what is
allowed, and what runs is the checked tree with the server's limits.
"""

# ruff: noqa: S608  (the SQL built here is the attack under test)

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

pytest.importorskip("chdb", reason="the guard parses with chDB (auditbird[local])")

from auditbird.tinybird.datafiles import SHIPPED, load_dir  # noqa: E402
from auditbird.tinybird.local.engine import FORMATS, Engine  # noqa: E402
from auditbird.tinybird.local.sql_guard import LIMITS, GuardError, SqlGuard  # noqa: E402
from auditbird.tinybird.local.tokens import (  # noqa: E402
    ScopeError,
    TokenStore,
    cross_origin,
    host_allowed,
    is_loopback,
    parse_scope,
    redact_uri,
)

TABLES = {"audit_log", "audit_log_quarantine", "list_audit_log"}


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    engine = Engine(None)
    datasources, pipes = load_dir(SHIPPED)
    engine.load(datasources, pipes)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def guard(engine: Engine) -> SqlGuard:
    return SqlGuard(engine)


def _rows(engine: Engine, sql: str) -> list[str]:
    return [row[0] for row in json.loads(engine.run(sql, "JSONCompact"))["data"]]


def test_every_table_function_of_chdb_is_refused(engine: Engine, guard: SqlGuard) -> None:
    names = _rows(engine, "SELECT name FROM system.table_functions")
    with pytest.raises(GuardError, match="table functions: 'view'"):
        guard.check("SELECT * FROM view(SELECT 1)", TABLES)
    assert {"file", "url", "s3", "remote", "executable", "input"} <= set(names)
    for name in names:
        for query in (
            f"SELECT * FROM {name}('x')",
            f"SELECT * FROM `{name}`('x')",
            f'SELECT * FROM "{name}"(1)',
        ):
            with pytest.raises(GuardError, match="table functions|Syntax error"):
                guard.check(query, TABLES)  # view(SELECT …) and kin only parse with a query inside


def test_denied_function_families_are_not_allowed(engine: Engine, guard: SqlGuard) -> None:
    catalogue = _rows(engine, "SELECT name FROM system.functions")
    families = ("file", "filesystem", "dictget", "joinget", "sleep", "addressto", "getsetting", "getserver")
    denied = [n for n in catalogue if n.lower().startswith(families)]
    denied += ["hostName", "currentUser", "getMacro", "hasColumnInTable", "demangle", "getClientHTTPHeader"]
    assert len(denied) > 40
    for name in denied:
        assert not guard.allowed_function(name), name
        with pytest.raises(GuardError):
            guard.check(f"SELECT {name}('x')", TABLES)
        with pytest.raises(GuardError):
            guard.check(f"SELECT * APPLY {name} FROM audit_log", TABLES)
    for name in (
        "count",
        "COUNT",
        "countIf",
        "uniqExactStateIf",
        "sumMerge",
        "arrayMap",
        "JSONExtractString",
    ):
        assert guard.allowed_function(name), name


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
        ("SELECT 1 INTO OUTFILE '/tmp/x' AND STDOUT", "INTO OUTFILE"),
        ("SELECT 1 SETTINGS readonly = 0", "SETTINGS"),
        ("SELECT * FROM (SELECT 1 SETTINGS max_execution_time = 1000)", "SETTINGS"),
        ("SELECT * FROM system.one", "Resource 'system.one' not found"),
        ("SELECT * FROM default.audit_log", "not found"),
        ("SELECT * FROM INFORMATION_SCHEMA.TABLES", "not found"),
        ("SELECT * FROM other_table", "Resource 'other_table' not found"),
        ("SELECT 1 IN system.users", "database-qualified"),
        ("SELECT system.one.dummy", "database-qualified"),
        ("DROP TABLE audit_log", "Only SELECT"),
        ("INSERT INTO audit_log SELECT * FROM audit_log", "Only SELECT"),
        ("ALTER TABLE audit_log DELETE WHERE 1", "Only SELECT"),
        ("SYSTEM SHUTDOWN", "Only SELECT"),
        ("EXPLAIN SELECT 1", "Only SELECT"),
        ("SET readonly = 0", "Only SELECT"),
        ("SELECT 1; DROP TABLE audit_log", "Multi-statements"),
        ("SELECT 'unterminated", "not closed"),
        ("SELECT 1 FORMAT XML", "format XML is not supported"),
        ("SELECT 'x' " + "x" * (300 << 10), "longer than"),
    ],
)
def test_refused(guard: SqlGuard, query: str, message: str) -> None:
    with pytest.raises(GuardError, match=message) as info:
        guard.check(query, TABLES, FORMATS)
    # A table the query may not read is a 403, as Tinybird answers a resource out of reach (and as
    # tb-server's API tests expect); any other refusal a 400.
    assert info.value.status == (403 if "not found" in message or "qualified" in message else 400)


def test_what_runs_is_the_checked_tree_with_the_servers_limits(engine: Engine, guard: SqlGuard) -> None:
    checked = guard.check("SELECT 1 AS a$$, 'b' AS y$$ FORMAT JSONEachRow", TABLES, FORMATS)
    assert checked.fmt == "JSONEachRow"
    assert checked.sql.startswith("SELECT * FROM (SELECT 1 AS `a$$`, 'b' AS `y$$`)")
    for key, value in LIMITS.items():
        assert f"{key} = {value!r}".replace('"', "'") in checked.sql or f"{key} = {value}" in checked.sql
    assert json.loads(guard.run(checked, "JSONEachRow")) == {"a$$": 1, "y$$": "b"}


def test_with_names_and_workspace_tables_are_readable(engine: Engine, guard: SqlGuard) -> None:
    query = (
        "WITH recent AS (SELECT uid, timestamp FROM audit_log WHERE timestamp > 0) "
        "SELECT count() AS c FROM recent WHERE uid IN (SELECT uid FROM audit_log_quarantine) "
        "UNION ALL SELECT countIf(version > 1) FROM audit_log ARRAY JOIN [1, 2] AS k"
    )
    checked = guard.check(query, TABLES)
    assert sorted(json.loads(guard.run(checked, "JSONCompact"))["data"]) == [[0], [0]]


def test_a_failed_query_does_not_leak_into_the_next(engine: Engine, guard: SqlGuard) -> None:
    too_big = guard.check("SELECT arrayJoin(range(2000000)) AS n", TABLES)
    with pytest.raises(ValueError, match="Limit for result exceeded"):
        guard.run(too_big, "JSON")
    answer = json.loads(guard.run(guard.check("SELECT 7 AS n", TABLES), "JSON"))
    assert answer["data"] == [{"n": 7}]


# -- tokens and the browser (10.3) -----------------------------------------------------------------


def test_scopes_are_tinybirds() -> None:
    assert parse_scope("PIPES:READ:list_audit_log") == ("PIPES:READ", "list_audit_log")
    assert parse_scope("DATASOURCES:APPEND:audit_log") == ("DATASOURCES:APPEND", "audit_log")
    assert parse_scope("ADMIN") == ("ADMIN", "")
    for bad in ("PIPES:READ", "PIPES:WRITE:x", "ADMIN:x", "", "TOKENS"):
        with pytest.raises(ScopeError):
            parse_scope(bad)


def test_created_tokens_are_kept_as_digests_only() -> None:
    store = TokenStore("p.admin")
    value = store.create("reader", ["PIPES:READ:list_audit_log"])
    token = store.lookup(value)
    assert token is not None and token.can("PIPES:READ", "list_audit_log")
    assert not token.can("PIPES:READ", "other") and not token.can("DATASOURCES:APPEND", "audit_log")
    assert token.readable(["audit_log"], ["list_audit_log", "other"]) == {"list_audit_log"}
    assert store.lookup("p.admin") is not None and store.lookup("p.admin").admin  # type: ignore[union-attr]
    assert store.lookup("nope") is None and store.lookup(None) is None
    assert value not in repr(store.__dict__["_by_digest"])
    assert store.mask(f"GET /x?token={value} and p.admin") == "GET /x?token=[redacted] and [redacted]"


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:7181", True),
        ("localhost:7181", True),
        ("LOCALHOST", True),
        ("[::1]:7181", True),
        ("127.0.0.2:7181", True),
        ("10.1.2.3:7181", False),  # not this server's address (bound to 127.0.0.1)
        ("app.localhost:7181", True),
        ("evil.example:7181", False),
        ("127.0.0.1.nip.io:7181", False),
        ("localhost.evil.example", False),
        ("", False),
        (None, False),
    ],
)
def test_host_header(host: str | None, allowed: bool) -> None:
    assert host_allowed(host, "127.0.0.1") is allowed


def test_host_header_on_all_interfaces() -> None:
    assert host_allowed("10.1.2.3:7181", "0.0.0.0") and host_allowed("[fe80::1]:7181", "::")
    assert host_allowed("10.1.2.3", "10.1.2.3") and not host_allowed("10.1.2.4", "10.1.2.3")
    assert not host_allowed("evil.example", "0.0.0.0")


def test_cross_origin_and_loopback() -> None:
    assert not cross_origin({}, "127.0.0.1:7181")
    assert not cross_origin({"Origin": "http://127.0.0.1:7181"}, "127.0.0.1:7181")
    assert not cross_origin({"Sec-Fetch-Site": "none"}, "127.0.0.1:7181")
    assert cross_origin({"Origin": "http://evil.example"}, "127.0.0.1:7181")
    assert cross_origin({"Origin": "null"}, "127.0.0.1:7181")
    assert cross_origin({"Sec-Fetch-Site": "cross-site"}, "127.0.0.1:7181")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("127.8.9.10")
    assert not is_loopback("10.0.0.1") and not is_loopback(None) and not is_loopback("x")


def test_redact_uri() -> None:
    assert redact_uri("/v0/sql?q=SELECT+1&token=p.secret") == "/v0/sql?q=SELECT+1&token=[redacted]"
    assert redact_uri("/v0/sql?TOKEN=p.secret&token=p.other") == "/v0/sql?TOKEN=[redacted]&token=[redacted]"
    assert redact_uri("/v0/pipes/x.json") == "/v0/pipes/x.json"
    assert redact_uri("/v0/pipes/x.json?a=1") == "/v0/pipes/x.json?a=1"
