"""The Tinybird-compatible local server, end to end: a real subprocess on loopback, real chDB.

Each test writes into its own workspace, so tests share one server without seeing each other's rows.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditbird.tinybird.datafiles import SHIPPED, load_dir, shipped_files
from tests.plugins.tinybird_server import TinybirdServer

COLUMNS = ["uid", "workspace", "id", "action", "actor", "targets", "metadata", "timestamp", "version"]
T0 = 1_700_000_000_000


def row(workspace: str, n: int, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "uid": f"u{n:04d}",
        "workspace": workspace,
        "id": f"monitor:{n % 3}",
        "action": "monitor.down" if n % 2 else "monitor.up",
        "actor": json.dumps({"id": f"user{n % 4}", "name": "someone"}),
        "targets": json.dumps([{"id": str(n % 3), "type": "monitor"}]),
        "metadata": json.dumps({"region": "gru", "n": n}),
        "timestamp": T0 + n * 1000,
        "version": 1,
    }
    base.update(over)
    return base


def ndjson(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def ingest(server: TinybirdServer, rows: list[dict[str, Any]], **kw: Any) -> httpx.Response:
    return post_events(server, ndjson(rows), **kw)


def post_events(
    server: TinybirdServer, body: bytes, *, wait: bool = True, compress: bool = False, name: str = "audit_log"
) -> httpx.Response:
    headers = dict(server.headers)
    if compress:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    params = {"name": name, "wait": "true"} if wait else {"name": name}
    return httpx.post(f"{server.url}/v0/events", params=params, content=body, headers=headers, timeout=30)


# The shipped pipes name no parameter like a column: these tests' names, as the pipes spell them.
_PIPE_PARAMS = {"workspace": "ws", "actor_id": "actor_is", "uid": "uids"}


def pipe(server: TinybirdServer, name: str, **params: Any) -> httpx.Response:
    params = {_PIPE_PARAMS.get(k, k): v for k, v in params.items()}
    return httpx.get(f"{server.url}/v0/pipes/{name}.json", params=params, headers=server.headers, timeout=30)


def uids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["uid"] for r in response.json()["data"]]


def sql(server: TinybirdServer, query: str, **params: Any) -> httpx.Response:
    """The Query API; a query starting with % is a template over ``params``, as in Tinybird."""
    return httpx.get(
        f"{server.url}/v0/sql", params={"q": query, **params}, headers=server.headers, timeout=30
    )


@pytest.fixture
def ws() -> str:
    return f"ws-{uuid.uuid4().hex[:12]}"


# -- ingest and read back -------------------------------------------------------------------


def test_seed_example_round_trips_through_the_endpoint_pipe(tinybird_server: TinybirdServer, ws: str) -> None:
    event = {
        "uid": "0190a1b2-0000-7000-8000-000000000001",
        "workspace": ws,
        "id": "monitor:1",
        "action": "monitor.down",
        "actor": '{"id":"","name":"system"}',
        "targets": '[{"id":"1","type":"monitor"}]',
        "metadata": '{"region":"gru","statusCode":400,"message":"timeout"}',
        "timestamp": 1_700_000_000_123,
        "version": 1,
    }
    resp = ingest(tinybird_server, [event])
    assert resp.status_code == 200
    assert resp.json() == {"successful_rows": 1, "quarantined_rows": 0}

    out = pipe(tinybird_server, "endpoint_audit_log", event_id="monitor:1", workspace=ws)
    assert out.status_code == 200
    doc = out.json()
    assert set(doc) >= {"meta", "data", "rows", "rows_before_limit_at_least", "statistics"}
    assert [m["name"] for m in doc["meta"]] == COLUMNS
    assert list(doc["data"][0]) == COLUMNS
    assert doc["data"] == [event]  # timestamp comes back as a JSON number, not a string
    assert doc["rows"] == 1
    assert set(doc["statistics"]) == {"elapsed", "rows_read", "bytes_read"}


def test_stream_history_is_newest_first_with_ties_broken_by_uid(
    tinybird_server: TinybirdServer, ws: str
) -> None:
    rows = [row(ws, n, id="monitor:9", timestamp=T0 + (n // 2) * 1000) for n in range(6)]
    rows.append(row(ws, 50, id="monitor:other", metadata=None))
    assert ingest(tinybird_server, rows).json() == {"successful_rows": 7, "quarantined_rows": 0}

    got = uids(pipe(tinybird_server, "endpoint_audit_log", event_id="monitor:9", workspace=ws))
    assert got == ["u0005", "u0004", "u0003", "u0002", "u0001", "u0000"]
    assert uids(pipe(tinybird_server, "endpoint_audit_log", event_id="monitor:9", workspace=ws, limit=2)) == [
        "u0005",
        "u0004",
    ]
    other = pipe(tinybird_server, "endpoint_audit_log", event_id="monitor:other", workspace=ws).json()["data"]
    assert other[0]["metadata"] is None and other[0]["targets"] == rows[-1]["targets"]
    # Another workspace sees nothing.
    assert uids(pipe(tinybird_server, "endpoint_audit_log", event_id="monitor:9", workspace=ws + "x")) == []


def test_gzip_body_and_202_without_wait(tinybird_server: TinybirdServer, ws: str) -> None:
    rows = [row(ws, n) for n in range(200)]
    resp = ingest(tinybird_server, rows, wait=False, compress=True)
    assert resp.status_code == 202
    assert resp.json() == {"successful_rows": 200, "quarantined_rows": 0}
    page = pipe(tinybird_server, "list_audit_log", workspace=ws, limit=1000).json()
    assert page["rows"] == 200
    assert page["data"][0]["uid"] == "u0199"

    bad = httpx.post(
        f"{tinybird_server.url}/v0/events",
        params={"name": "audit_log"},
        content=b"not gzip at all",
        headers={**tinybird_server.headers, "Content-Encoding": "gzip"},
    )
    assert bad.status_code == 400 and "gzip" in bad.text


def test_a_retried_event_is_returned_once(tinybird_server: TinybirdServer, ws: str) -> None:
    first = [row(ws, 1), row(ws, 2)]
    assert ingest(tinybird_server, first).json()["successful_rows"] == 2
    assert ingest(tinybird_server, first).json()["successful_rows"] == 2  # the retry lands again
    assert ingest(tinybird_server, [row(ws, 1)] * 3).json()["successful_rows"] == 3

    assert uids(pipe(tinybird_server, "endpoint_audit_log", event_id="monitor:1", workspace=ws)) == ["u0001"]
    assert uids(pipe(tinybird_server, "list_audit_log", workspace=ws)) == ["u0002", "u0001"]
    # Stored more than once, returned once: read-time de-duplication, not luck.
    stored = sql(
        tinybird_server, "%\nSELECT count() AS c FROM audit_log WHERE workspace = {{String(w)}}", w=ws
    )
    assert stored.json()["data"][0]["c"] >= 2


def test_a_uid_published_again_at_another_time_is_returned_once(
    tinybird_server: TinybirdServer, ws: str
) -> None:
    # Not the same sorting key, so FINAL alone would keep both copies.
    ingest(tinybird_server, [row(ws, 1), row(ws, 4)])
    ingest(tinybird_server, [row(ws, 1, timestamp=T0 + 5_000)])
    # The first stored copy is the one kept (T0 + 1 s, behind u0004 at T0 + 4 s), as on SQLite.
    assert uids(pipe(tinybird_server, "endpoint_audit_log", event_id="monitor:1", workspace=ws)) == [
        "u0004",
        "u0001",
    ]
    assert uids(pipe(tinybird_server, "list_audit_log", workspace=ws)) == ["u0004", "u0001"]


# -- the list pipe: every filter and the cursor ---------------------------------------------


@pytest.fixture
def listed(tinybird_server: TinybirdServer, ws: str) -> str:
    rows = [row(ws, n) for n in range(12)]
    rows.append(
        row(
            ws,
            12,
            id="incident:7",
            action="incident.create",
            actor=json.dumps({"id": "mxkaske", "name": "Max"}),
            targets=json.dumps([{"id": "7", "name": "incident"}, {"id": "1", "type": "monitor"}]),
            metadata=json.dumps({"title": "Database DOWN in GRU"}),
        )
    )
    rows.append(
        row(ws, 13, id="monitor:x", targets="[]", metadata=None, timestamp=T0 + 12_000)
    )  # same ms as u0012
    assert ingest(tinybird_server, rows).json() == {"successful_rows": 14, "quarantined_rows": 0}
    return ws


def test_list_filters(tinybird_server: TinybirdServer, listed: str) -> None:
    def q(**params: Any) -> list[str]:
        return uids(pipe(tinybird_server, "list_audit_log", workspace=listed, **params))

    everything = q()
    assert everything == [f"u{n:04d}" for n in range(13, -1, -1)]  # u0013 beats u0012 in the same ms
    assert q(event_id="monitor:1") == ["u0010", "u0007", "u0004", "u0001"]
    assert q(actions="incident.create") == ["u0012"]
    assert q(actions="incident.create,monitor.up") == [
        "u0012",
        "u0010",
        "u0008",
        "u0006",
        "u0004",
        "u0002",
        "u0000",
    ]
    assert q(actor_id="mxkaske") == ["u0012"]
    assert q(actor_id="user1") == ["u0013", "u0009", "u0005", "u0001"]
    assert q(target_type="incident") == ["u0012"]  # the seed's {id, name} shape
    assert q(target_type="monitor", target_id="1") == ["u0012", "u0010", "u0007", "u0004", "u0001"]
    assert q(target_id="7") == ["u0012"]
    assert q(target_type="incident", target_id="1") == []  # type and id of the same target
    assert q(since=T0 + 10_000) == ["u0013", "u0012", "u0011", "u0010"]
    assert q(until=T0 + 2_000) == ["u0001", "u0000"]
    assert q(since=T0 + 3_000, until=T0 + 5_000) == ["u0004", "u0003"]
    assert q(text="database down") == ["u0012"]  # case-insensitive, in the metadata
    assert q(text="INCIDENT:") == ["u0012"]  # in the subject id
    assert q(uid="u0005") == ["u0005"]
    assert q(limit=3) == everything[:3]
    assert q(limit=0) == []
    assert q(order="asc", limit=3) == ["u0000", "u0001", "u0002"]
    assert q(event_id="monitor:1", actions="monitor.down", actor_id="user3") == ["u0007"]


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_keyset_cursor_walks_every_row_once(tinybird_server: TinybirdServer, listed: str, order: str) -> None:
    expected = uids(pipe(tinybird_server, "list_audit_log", workspace=listed, order=order))
    seen: list[str] = []
    cursor: dict[str, Any] = {}
    for _ in range(10):
        page = pipe(
            tinybird_server, "list_audit_log", workspace=listed, order=order, limit=4, **cursor
        ).json()["data"]
        if not page:
            break
        seen += [r["uid"] for r in page]
        cursor = {"after_ts": page[-1]["timestamp"], "after_uid": page[-1]["uid"]}
    assert seen == expected and len(seen) == 14


# -- quarantine -----------------------------------------------------------------------------


def test_rows_that_do_not_fit_are_quarantined_and_the_rest_ingested(
    tinybird_server: TinybirdServer, ws: str
) -> None:
    good = [row(ws, 1), row(ws, 2)]
    del good[1]["targets"], good[1]["version"]  # DEFAULT columns may be left out
    body = (
        ndjson(good)
        + b"{not json\n"
        + ndjson(
            [
                row(ws, 3, timestamp="yesterday"),  # wrong type
                {k: v for k, v in row(ws, 4).items() if k != "uid"},  # required column missing
                row(ws, 5, version=2**40),  # out of range for Int32
            ]
        )
    )
    resp = post_events(tinybird_server, body)
    assert resp.status_code == 200
    assert resp.json() == {"successful_rows": 2, "quarantined_rows": 4}
    data = pipe(tinybird_server, "list_audit_log", workspace=ws).json()["data"]
    assert [r["uid"] for r in data] == ["u0002", "u0001"]
    assert data[0]["targets"] == "[]" and data[0]["version"] == 1

    found = sql(
        tinybird_server,
        "%\nSELECT c__error_column, c__error, c__line FROM audit_log_quarantine "
        "WHERE position(c__line, {{String(w)}}) > 0 OR c__line = '{not json' ORDER BY c__line FORMAT JSON",
        w=ws,
    ).json()["data"]
    errors = {tuple(r["c__error_column"]): r["c__error"][0] for r in found}
    assert "timestamp" in errors[("timestamp",)] and "integer" in errors[("timestamp",)]
    assert "uid" in errors[("uid",)] and "missing" in errors[("uid",)]
    assert "out of range" in errors[("version",)]
    assert any(r["c__line"] == "{not json" and "invalid JSON" in r["c__error"][0] for r in found)


# -- errors as Tinybird sends them ----------------------------------------------------------


def test_auth(tinybird_server: TinybirdServer) -> None:
    url = tinybird_server.url
    no_token = httpx.post(f"{url}/v0/events", params={"name": "audit_log"}, content=b"{}")
    assert no_token.status_code == 403 and no_token.headers["content-type"].startswith("application/json")
    wrong = httpx.post(
        f"{url}/v0/events",
        params={"name": "audit_log"},
        content=b"{}",
        headers={"Authorization": "Bearer nope"},
    )
    assert wrong.status_code == 403 and wrong.json()["error"] == "Invalid token"
    bad_pipe = httpx.get(f"{url}/v0/pipes/list_audit_log.json", params={"token": "nope"})
    assert bad_pipe.status_code == 403 and bad_pipe.json()["error"] == "Invalid token"
    assert httpx.get(f"{url}/v0/sql", params={"q": "SELECT 1"}).status_code == 403
    as_param = httpx.get(f"{url}/v0/pipes/list_audit_log.json", params={"token": tinybird_server.token})
    assert as_param.status_code == 200
    tokens = httpx.get(f"{url}/tokens").json()
    assert tokens["admin_token"] == tokens["workspace_admin_token"] == tinybird_server.token


def test_unknown_names_and_missing_parameters(tinybird_server: TinybirdServer) -> None:
    server = tinybird_server
    missing_name = httpx.post(f"{server.url}/v0/events", content=b"{}", headers=server.headers)
    assert missing_name.status_code == 400 and "'name'" in missing_name.json()["error"]
    unknown_ds = post_events(server, b"{}", name="no_such_ds")
    assert unknown_ds.status_code == 404 and "no_such_ds" in unknown_ds.json()["error"]
    unknown_pipe = pipe(server, "no_such_pipe")
    assert unknown_pipe.status_code == 404 and "no_such_pipe" in unknown_pipe.json()["error"]
    assert "documentation" in unknown_pipe.json()
    required = pipe(server, "endpoint_audit_log")
    assert required.status_code == 400 and "event_id" in required.json()["error"]
    wrong_type = pipe(server, "list_audit_log", since="yesterday")
    assert wrong_type.status_code == 400 and "since" in wrong_type.json()["error"]
    assert "limit" in pipe(server, "list_audit_log", limit="ten").json()["error"]


def test_request_over_10_mb_is_413(tinybird_server: TinybirdServer) -> None:
    resp = post_events(tinybird_server, b" " * (10 * 1024 * 1024 + 1))
    assert resp.status_code == 413


# -- the Query API --------------------------------------------------------------------------


def test_sql_formats(tinybird_server: TinybirdServer, ws: str) -> None:
    ingest(tinybird_server, [row(ws, 1), row(ws, 2)])
    base = "%\nSELECT uid, timestamp FROM audit_log WHERE workspace = {{String(w)}} ORDER BY uid"
    as_json = sql(tinybird_server, base, w=ws)
    assert as_json.json()["data"] == [
        {"uid": "u0001", "timestamp": T0 + 1000},
        {"uid": "u0002", "timestamp": T0 + 2000},
    ]
    assert (
        sql(tinybird_server, base + " FORMAT CSV", w=ws).text == f'"u0001",{T0 + 1000}\n"u0002",{T0 + 2000}\n'
    )
    with_names = sql(tinybird_server, base + " FORMAT CSVWithNames", w=ws)
    assert with_names.text.splitlines()[0] == '"uid","timestamp"'
    assert with_names.headers["content-type"].startswith("text/csv")
    lines = sql(tinybird_server, base + " format JSONEachRow", w=ws).text.splitlines()
    assert [json.loads(x) for x in lines] == [
        {"uid": "u0001", "timestamp": T0 + 1000},
        {"uid": "u0002", "timestamp": T0 + 2000},
    ]
    assert (
        sql(tinybird_server, base + " FORMAT TSV", w=ws).text == f"u0001\t{T0 + 1000}\nu0002\t{T0 + 2000}\n"
    )
    assert sql(tinybird_server, base + " FORMAT XML", w=ws).status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "DROP TABLE audit_log",
        "INSERT INTO audit_log (uid) VALUES ('x')",
        "SELECT 1; DROP TABLE audit_log",
        "SELECT * FROM file('/etc/passwd')",
        "SELECT 1 INTO OUTFILE '/tmp/x'",
        "SELECT 'unterminated",
        "SELECT $$'$$; DROP TABLE audit_log; SELECT '$$",
        # `#` starts a comment in ClickHouse: a quote inside one must not hide the next line.
        "SELECT 1 # '\n, * FROM file('/etc/hostname', 'LineAsString') -- '",
        "SELECT * FROM icebergLocal('/tmp/x')",
    ],
)
def test_sql_is_select_only(tinybird_server: TinybirdServer, query: str) -> None:
    resp = sql(tinybird_server, query)
    assert resp.status_code == 400
    assert resp.json()["error"]
    assert sql(tinybird_server, "SELECT count() FROM audit_log").status_code == 200  # still there


# -- injection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"event_id": "x' OR 1=1 --"},
        {"event_id": "x\\' OR 1=1 --"},
        {"event_id": "x'); DROP TABLE audit_log; --"},
        {"actions": "a') OR 1=1 --,b"},
        {"actor_id": "' OR ''='"},
        {"after_uid": "') OR 1=1 --", "after_ts": str(T0 + 10**9), "order": "asc"},
    ],
)
def test_injection_attempts_are_harmless(
    tinybird_server: TinybirdServer, listed: str, params: dict[str, str]
) -> None:
    name = "endpoint_audit_log" if "event_id" in params else "list_audit_log"
    resp = pipe(tinybird_server, name, workspace=listed, **params)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"] == []
    assert len(uids(pipe(tinybird_server, "list_audit_log", workspace=listed))) == 14


def test_values_with_quotes_are_stored_and_found_exactly(tinybird_server: TinybirdServer, ws: str) -> None:
    tricky = "monitor:'1\\' --"
    ingest(tinybird_server, [row(ws, 1, id=tricky)])
    assert uids(pipe(tinybird_server, "endpoint_audit_log", event_id=tricky, workspace=ws)) == ["u0001"]
    assert uids(pipe(tinybird_server, "list_audit_log", text="'1\\'", workspace=ws)) == ["u0001"]


# -- fault mode, restarts, extra datafiles --------------------------------------------------


def test_fail_rate_answers_503_and_429_with_retry_after(
    tinybird_server_factory: Callable[..., TinybirdServer],
) -> None:
    server = tinybird_server_factory(fail_rate=0.5, seed=7, retry_after=0)
    statuses = [pipe(server, "list_audit_log") for _ in range(40)]
    codes = [r.status_code for r in statuses]
    assert set(codes) == {200, 429, 503}
    assert 8 <= codes.count(200) <= 32
    for r in statuses:
        if r.status_code in (429, 503):
            assert r.headers["Retry-After"] == "0"
    resp = next(r for r in statuses if r.status_code == 429)
    assert resp.headers["X-RateLimit-Remaining"] == "0"


def test_throttle_limits_requests_per_second_per_datasource(
    tinybird_server_factory: Callable[..., TinybirdServer],
) -> None:
    server = tinybird_server_factory(throttle=3)
    with httpx.Client(headers=server.headers) as client:
        responses = [
            client.post(
                f"{server.url}/v0/events", params={"name": "audit_log"}, content=ndjson([row("t", n)])
            )
            for n in range(8)
        ]
    codes = [r.status_code for r in responses]
    assert codes.count(429) >= 1 and codes[0] == 202
    limited = next(r for r in responses if r.status_code == 429)
    assert limited.json()["error"] == "Too many requests"
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-RateLimit-Limit"] == "3" and limited.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Reset" in limited.headers
    assert responses[0].headers["X-RateLimit-Limit"] == "3"


def test_data_survives_a_restart(tinybird_server_factory: Callable[..., TinybirdServer], ws: str) -> None:
    server = tinybird_server_factory()
    assert ingest(server, [row(ws, n) for n in range(5)]).json()["successful_rows"] == 5
    server.restart()
    assert uids(pipe(server, "list_audit_log", workspace=ws)) == ["u0004", "u0003", "u0002", "u0001", "u0000"]


def test_extra_datafiles_are_loaded_and_nodes_chain(
    tinybird_server_factory: Callable[..., TinybirdServer], tmp_path: Path
) -> None:
    (tmp_path / "pipes").mkdir()
    (tmp_path / "pipes" / "actions_count.pipe").write_text(
        "NODE filtered\nSQL >\n    %\n    SELECT action FROM audit_log\n"
        "    WHERE workspace = {{ String(ws_name, '') }}\n\n"
        "NODE endpoint\nSQL >\n"
        "    SELECT action, count() AS n FROM filtered GROUP BY action ORDER BY action\n\n"
        "TYPE endpoint\n"
    )
    server = tinybird_server_factory(datafiles=[tmp_path])
    ingest(server, [row("w", n) for n in range(5)])
    data = pipe(server, "actions_count", ws_name="w").json()["data"]
    assert data == [{"action": "monitor.down", "n": 2}, {"action": "monitor.up", "n": 3}]


def test_datafiles_command_writes_files_that_parse_back(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from auditbird.cli import app

    result = CliRunner().invoke(app, ["tinybird", "datafiles", str(tmp_path / "tb")])
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(tmp_path / "tb") for p in (tmp_path / "tb").rglob("*.*")) == shipped_files()
    written, shipped = load_dir(tmp_path / "tb"), load_dir(SHIPPED)
    assert written == shipped
    datasources, pipes = written
    assert set(datasources) == {"audit_log", "audit_tree", "audit_checkpoints"}  # + the published tree
    assert set(pipes) == {
        "endpoint_audit_log",
        "list_audit_log",
        "audit_tree_leaves",
        "audit_checkpoints_latest",
    }
    assert all(p.type == "endpoint" for p in pipes.values())


# -- the fast path: lines taken as they came must be stored as the full check stores them --


def test_lines_taken_as_they_came_and_lines_rewritten_are_stored_alike(
    tinybird_server: TinybirdServer, ws: str
) -> None:
    def compact(obj: dict[str, Any]) -> str:
        return json.dumps(obj, separators=(",", ":"))

    r = {n: row(ws, n) for n in range(1, 13)}
    reordered = dict(reversed(list(r[3].items())), extra={"a": [1, {"b": 2}]}, actor_id="spoof")
    lines = [
        compact(r[1]),  # as the store sends them
        json.dumps(r[2]),  # with spaces
        json.dumps(reordered),  # keys in another order, unknown keys (one named like a MATERIALIZED column)
        json.dumps({**r[4], "version": 3.0, "timestamp": float(T0 + 4000)}),  # integral floats
        json.dumps({**r[5], "metadata": {"k": "v"}, "id": 5}),  # JSON and a number for String columns
        json.dumps({**{k: v for k, v in r[6].items() if k != "targets"}, "version": None}),  # defaults
        json.dumps({**r[7], "id": "monitor:é😀", "actor": '{"id":"ü","name":"x"}'}),  # \u escapes, a pair
        json.dumps({**r[8], "id": "monitor:é😀"}, ensure_ascii=False),  # raw UTF-8
        compact(r[9]) + "\r",  # CRLF
        "",
        "   ",
        "  " + compact(r[10]) + "  ",  # padded
        '{"uid":"u0011",' + compact(r[12])[1:],  # a duplicate key: the last one counts
        json.dumps({**r[11], "timestamp": "x"}),  # quarantined
    ]
    resp = post_events(tinybird_server, ("\n".join(lines) + "\n").encode())
    assert resp.json() == {"successful_rows": 11, "quarantined_rows": 1}

    got = sql(
        tinybird_server,
        "%\nSELECT uid, id, action, actor, targets, metadata, timestamp, version, actor_id, target_types, "
        "target_ids FROM audit_log WHERE workspace = {{String(w)}} ORDER BY uid FORMAT JSON",
        w=ws,
    ).json()["data"]
    by_uid = {g.pop("uid"): g for g in got}
    assert sorted(by_uid) == [f"u{n:04d}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12)]

    def stored(n: int, **over: Any) -> dict[str, Any]:
        base = {k: v for k, v in r[n].items() if k not in {"uid", "workspace"}}
        base.update({k: v for k, v in over.items() if k != "actor_id"})
        base["actor_id"] = over.get("actor_id", json.loads(base["actor"])["id"])
        base["target_types"] = [t["type"] for t in json.loads(base["targets"])]
        base["target_ids"] = [t["id"] for t in json.loads(base["targets"])]
        return base

    assert by_uid["u0001"] == stored(1)
    assert by_uid["u0002"] == stored(2)
    assert by_uid["u0003"] == stored(3, actor_id="spoof")  # an ingested column: the row's own value
    assert by_uid["u0004"] == stored(4, version=3, timestamp=T0 + 4000)
    assert by_uid["u0005"] == stored(5, metadata='{"k":"v"}', id="5")
    assert by_uid["u0006"] == stored(6, targets="[]", version=1)
    assert by_uid["u0007"] == stored(7, id="monitor:é😀", actor='{"id":"ü","name":"x"}')
    assert by_uid["u0008"] == stored(8, id="monitor:é😀")
    assert by_uid["u0009"] == stored(9)
    assert by_uid["u0010"] == stored(10)
    assert by_uid["u0012"] == stored(12)


def test_a_large_batch_with_a_few_bad_rows(tinybird_server: TinybirdServer, ws: str) -> None:
    rows = [row(ws, n, uid=f"u{n:05d}") for n in range(10_000)]
    for n in (0, 4321, 9999):
        rows[n]["version"] = "one"
    rows[77]["uid"] = None
    resp = ingest(tinybird_server, rows, compress=True)
    assert resp.json() == {"successful_rows": 9_996, "quarantined_rows": 4}
    counted = sql(
        tinybird_server,
        "%\nSELECT count() AS c, uniqExact(uid) AS u FROM audit_log WHERE workspace = {{String(w)}}",
        w=ws,
    ).json()["data"][0]
    assert counted == {"c": 9_996, "u": 9_996}
    quarantined = sql(
        tinybird_server,
        "%\nSELECT c__error_column FROM audit_log_quarantine WHERE position(c__line, {{String(w)}}) > 0",
        w=ws,
    ).json()["data"]
    assert sorted(q["c__error_column"][0] for q in quarantined) == ["uid", "version", "version", "version"]


def test_rows_clickhouse_refuses_are_quarantined_one_by_one(
    tinybird_server_factory: Callable[..., TinybirdServer], tmp_path: Path
) -> None:
    (tmp_path / "datasources").mkdir()
    (tmp_path / "datasources" / "things.datasource").write_text(
        'SCHEMA >\n    `id` UUID `json:$.id`,\n    `n` Int32 `json:$.n`\n\nENGINE "MergeTree"\n'
        'ENGINE_SORTING_KEY "id"\n'
    )
    server = tinybird_server_factory(datafiles=[tmp_path])
    good = [{"id": str(uuid.UUID(int=n)), "n": n} for n in range(3)]
    body = ndjson([good[0], {"id": "not-a-uuid", "n": 1}, good[1], good[2]])
    resp = post_events(server, body, name="things")
    assert resp.json() == {"successful_rows": 3, "quarantined_rows": 1}
    assert post_events(server, ndjson(good), name="things").json()["successful_rows"] == 3  # still fine
    found = sql(server, "SELECT c__error, c__line FROM things_quarantine FORMAT JSON").json()["data"]
    assert len(found) == 1 and "not-a-uuid" in found[0]["c__line"]
    assert found[0]["c__error"][0].startswith("ClickHouse refused the row")
    assert sql(server, "SELECT count() AS c FROM things").json()["data"] == [{"c": 6}]


def test_which_lines_are_taken_as_they_came() -> None:
    from auditbird.tinybird.local.ingest import RowChecker

    # The nine row columns only (String and Int): the shipped datasource's look-up columns (arrays)
    # and ingested_at (DateTime64) take the full check for now.
    shipped = load_dir(SHIPPED)[0]["audit_log"]
    nine = replace(shipped, columns=tuple(c for c in shipped.columns if c.name in set(COLUMNS)))
    checker = RowChecker(nine)
    lines = [json.dumps(row("w", n), separators=(",", ":")) for n in range(5)]
    split = checker.split("\n".join(lines) + "\n")
    assert split.as_came and split.good == lines and all(split.raw) and not split.bad

    odd = [
        '{"uid":"dup",' + lines[0][1:],  # a duplicate key: rewritten, with the value json.loads reads
        lines[1].replace('"version":1', '"version":1.0'),
        lines[2].replace('"id":"monitor:2"', '"id":"C:\\\\monitor"'),  # a \\ in the line
        lines[3].replace('"uid":"u0003"', '"uid":"u0003","extra":"x"'),  # an unknown key with a string
        lines[4].replace('"uid":"u0004"', '"uid":"u0004","extra":[1,2]'),  # an unknown key without one
    ]
    split = checker.split("\n".join(odd + lines))
    assert not split.as_came and not split.bad
    assert split.raw == [False, False, False, False, True] + [True] * 5
    assert split.good[5:] == lines and split.good[4] == odd[4]
    assert [json.loads(g)["uid"] for g in split.good[:4]] == ["u0000", "u0001", "u0002", "u0003"]
    assert json.loads(split.good[1])["version"] == 1 and json.loads(split.good[2])["id"] == "C:\\monitor"
