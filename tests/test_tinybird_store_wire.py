"""The Tinybird client's wire behaviour, against a scripted loopback HTTP server.

These answer 429/503/403/... on purpose to pin down retries, backoff and error mapping; the
end-to-end behaviour against the Tinybird-compatible local server is in test_tinybird_store.py.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from auditbird import Query, StoreUnavailable, Tinybird, UnsupportedOperation
from auditbird.codec import encode
from auditbird.event import Event
from auditbird.stores._tinybird_http import encode_line, split_batches
from auditbird.stores.base import COLUMNS
from auditbird.stores.tinybird import (
    AuthenticationError,
    PartialIngest,
    QuarantinedRows,
    RequestRejected,
    ResourceNotFound,
    TinybirdStore,
    list_params,
    parse_url,
)

pytestmark = pytest.mark.timeout(60)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Scripted:
    """Answers requests with the next scripted ``(status, headers, body)``; then 200 OK."""

    url: str
    answers: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def lines(self, i: int) -> list[dict[str, Any]]:
        body = self.seen[i].body
        if self.seen[i].headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return [json.loads(x) for x in body.decode().splitlines()]


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    state = Scripted(url="")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.seen.append(Seen(self.command, self.path, dict(self.headers), body))
            if state.answers:
                status, headers, text = state.answers.pop(0)
            else:
                rows = body.count(b"\n") if not self.headers.get("Content-Encoding") else 0
                if self.headers.get("Content-Encoding") == "gzip":
                    rows = gzip.decompress(body).count(b"\n")
                status, headers, text = 200, {}, json.dumps({"successful_rows": rows, "quarantined_rows": 0})
            payload = text.encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _store(url: str, **options: Any) -> TinybirdStore:
    return TinybirdStore(Tinybird(token="tok", host=url), **options)


def _rows(n: int, **kw: Any) -> list[Any]:
    return [encode(Event(id=f"m:{i}", action="monitor.down", metadata={"i": i}, **kw)) for i in range(n)]


# -- encoding and batching ---------------------------------------------------------------------


def test_ndjson_line_has_the_nine_columns_as_json_strings_and_the_lookup_columns() -> None:
    row = encode(
        Event(
            id="monitor:1",
            action="monitor.down",
            targets=[{"id": "1", "type": "monitor"}],
            metadata={"region": "gru", "note": 'quo"te ünï'},
        )
    )
    line = json.loads(encode_line(row))
    assert list(line) == [*COLUMNS, "actor_id", "target_types", "target_ids"]
    assert (line["actor_id"], line["target_types"], line["target_ids"]) == ("", ["monitor"], ["1"])
    assert line["actor"] == '{"id":"","name":"system"}'
    assert line["targets"] == '[{"id":"1","type":"monitor"}]'
    assert json.loads(line["metadata"]) == {"region": "gru", "note": 'quo"te ünï'}
    assert line["timestamp"] == row.timestamp and line["version"] == 1
    assert json.loads(encode_line(row._replace(metadata=None)))["metadata"] is None


def test_batches_respect_row_and_byte_limits() -> None:
    lines = ["x" * 99] * 250  # 100 bytes each with the newline
    assert [len(b) for b in split_batches(lines, 100, 10**6)] == [100, 100, 50]
    assert [len(b) for b in split_batches(lines, 1000, 1000)] == [10] * 25
    assert [len(b) for b in split_batches(["y" * 5000], 10, 1000)] == [1]  # one big row still goes
    assert split_batches([], 10, 10) == []


def test_writes_are_gzipped_ndjson_with_wait_true(scripted: Scripted) -> None:
    rows = _rows(3)
    with _store(scripted.url) as store:
        store.append(rows)
    [seen] = scripted.seen
    assert seen.method == "POST"
    assert seen.path.startswith("/v0/events?") and "name=audit_log" in seen.path and "wait=true" in seen.path
    assert seen.headers["Content-Encoding"] == "gzip"
    assert seen.headers["Authorization"] == "Bearer tok"
    assert [line["uid"] for line in scripted.lines(0)] == [r.uid for r in rows]
    assert scripted.lines(0)[2]["metadata"] == '{"i":2}'


def test_large_appends_are_split_into_several_requests(scripted: Scripted) -> None:
    with _store(scripted.url, batch_rows=40) as store:
        store.append(_rows(100))
    assert [len(scripted.lines(i)) for i in range(len(scripted.seen))] == [40, 40, 20]


def test_413_halves_the_batch(scripted: Scripted) -> None:
    scripted.answers = [(413, {}, "Request Entity Too Large")]
    rows = _rows(10)
    with _store(scripted.url) as store:
        store.append(rows)
    assert [len(scripted.lines(i)) for i in range(3)] == [10, 5, 5]
    assert [x["uid"] for x in scripted.lines(1) + scripted.lines(2)] == [r.uid for r in rows]


# -- retries -----------------------------------------------------------------------------------


def test_429_is_retried_after_retry_after(scripted: Scripted) -> None:
    scripted.answers = [(429, {"Retry-After": "1", "X-RateLimit-Limit": "100"}, "Too many requests")]
    with _store(scripted.url) as store:
        start = time.monotonic()
        store.append(_rows(2))
        elapsed = time.monotonic() - start
    assert len(scripted.seen) == 2 and elapsed >= 1.0
    assert scripted.lines(0) == scripted.lines(1)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_with_backoff(scripted: Scripted, status: int) -> None:
    scripted.answers = [(status, {}, "try again")] * 3
    with _store(scripted.url) as store:
        store.append(_rows(1))
    assert len(scripted.seen) == 4


def test_retries_give_up_after_max_retries(scripted: Scripted) -> None:
    scripted.answers = [(503, {}, "down")] * 10
    with _store(scripted.url, max_retries=2) as store, pytest.raises(StoreUnavailable, match="3 attempt"):
        store.append(_rows(1))
    assert len(scripted.seen) == 3


def test_retry_after_beyond_the_deadline_fails_at_once(scripted: Scripted) -> None:
    scripted.answers = [(429, {"Retry-After": "3600"}, "Too many requests")]
    start = time.monotonic()
    with _store(scripted.url, max_retry_time=5) as store, pytest.raises(StoreUnavailable, match="429"):
        store.append(_rows(1))
    assert time.monotonic() - start < 2 and len(scripted.seen) == 1


def test_wrong_token_is_an_authentication_error_without_retries(scripted: Scripted) -> None:
    scripted.answers = [(403, {}, "Invalid token")] * 5
    with _store(scripted.url) as store, pytest.raises(AuthenticationError, match="Invalid token"):
        store.append(_rows(1))
    assert len(scripted.seen) == 1


@pytest.mark.parametrize(
    ("status", "text", "error"),
    [
        (400, "Missing 'name' parameter", RequestRejected),
        (404, "Data Source not found", ResourceNotFound),
        (422, "partially ingested", PartialIngest),
    ],
)
def test_client_errors_are_not_retried(scripted: Scripted, status: int, text: str, error: type) -> None:
    scripted.answers = [(status, {}, text)] * 3
    with _store(scripted.url) as store, pytest.raises(error, match=text):
        store.append(_rows(1))
    assert len(scripted.seen) == 1


def test_quarantined_rows_raise_with_count_and_reason(scripted: Scripted) -> None:
    scripted.answers = [
        (200, {}, json.dumps({"successful_rows": 1, "quarantined_rows": 2})),
        (200, {}, json.dumps({"data": [{"c__error": ["value 1e99 on column 'version' is not Int32"]}]})),
    ]
    with _store(scripted.url) as store, pytest.raises(QuarantinedRows) as info:
        store.append(_rows(3))
    assert info.value.quarantined == 2 and info.value.successful == 1
    assert "2 row(s) were quarantined in audit_log_quarantine" in str(info.value)
    assert "is not Int32" in str(info.value)
    assert scripted.seen[1].path.startswith("/v0/sql?")


def test_a_server_that_never_answers_fails_in_bounded_time() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections (the backlog) and never answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with (
            _store(url, timeout=0.5, max_retry_time=2.0) as store,
            pytest.raises(StoreUnavailable, match="did not answer"),
        ):
            store.append(_rows(1))
        assert time.monotonic() - start < 4.0
    finally:
        silent.close()


def test_connection_refused_is_retried_then_unavailable() -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with (
        _store(f"http://127.0.0.1:{port}", max_retries=3) as store,
        pytest.raises(StoreUnavailable, match="4 attempt.*ConnectError"),
    ):
        store.append(_rows(1))


# -- reads -------------------------------------------------------------------------------------


def test_stream_reads_use_the_endpoint_pipe_and_coerce_values(scripted: Scripted) -> None:
    item = {
        "uid": "u1",
        "workspace": "",
        "id": "monitor:1",
        "action": "monitor.down",
        "actor": '{"id":"","name":"system"}',
        "targets": "[]",
        "metadata": "",
        "timestamp": "1700000000000",
        "version": "2",
    }
    scripted.answers = [(200, {}, json.dumps({"meta": [], "data": [item], "rows": 1}))]
    with _store(scripted.url) as store:
        [row] = store.query(Query(event_id="monitor:1", limit=5))
    assert scripted.seen[0].path.startswith("/v0/pipes/endpoint_audit_log.json?")
    assert "event_id=monitor%3A1" in scripted.seen[0].path and "limit=5" in scripted.seen[0].path
    assert row.timestamp == 1_700_000_000_000 and row.version == 2 and row.metadata is None


def test_unknown_pipe_is_named_in_the_error(scripted: Scripted) -> None:
    scripted.answers = [(404, {}, json.dumps({"error": "The pipe 'list_audit_log' does not exist"}))]
    with _store(scripted.url) as store, pytest.raises(ResourceNotFound, match="pipe 'list_audit_log'"):
        store.query(Query(actions=("a.b",)))


def test_query_parameters_for_every_filter_and_the_cursor() -> None:
    q = Query(
        workspace="acme",
        event_id="m:1",
        actions=("a.b", "c.d"),
        actor_id="u1",
        target_type="monitor",
        target_id="7",
        since=10,
        until=20,
        text="needle",
        uid="x",
        order="asc",
    )
    assert list_params(q, (15, "u9"), 50) == {
        "ws": "acme",
        "order": "asc",
        "limit": "50",
        "event_id": "m:1",
        "actions": "a.b,c.d",
        "actor_is": "u1",
        "target_type": "monitor",
        "target_id": "7",
        "since": "10",
        "until": "20",
        "text": "needle",
        "uids": "x",
        "after_ts": "15",
        "after_uid": "u9",
    }


def test_commit_order_reads_are_unsupported(scripted: Scripted) -> None:
    with _store(scripted.url) as store, pytest.raises(UnsupportedOperation, match="commit position"):
        store.query(Query(order="position"))
    assert scripted.seen == []


def test_unlimited_reads_page_through_the_list_pipe(scripted: Scripted, monkeypatch: Any) -> None:
    monkeypatch.setattr("auditbird.stores.tinybird.MAX_LIMIT", 2)

    def item(i: int) -> dict[str, Any]:
        return {"uid": f"u{i}", "id": "m:1", "action": "a.b", "timestamp": 100 - i, "version": 1}

    pages = [[item(0), item(1)], [item(2), item(3)], [item(4)]]
    scripted.answers = [(200, {}, json.dumps({"data": p})) for p in pages]
    with _store(scripted.url) as store:
        rows = store.query(Query(event_id="m:1", limit=None))
    assert [r.uid for r in rows] == ["u0", "u1", "u2", "u3", "u4"]
    assert scripted.seen[0].path.startswith("/v0/pipes/endpoint_audit_log.json")
    assert "after_ts=99&after_uid=u1" in scripted.seen[1].path
    assert scripted.seen[2].path.startswith("/v0/pipes/list_audit_log.json")


# -- URLs --------------------------------------------------------------------------------------


def test_url_forms(monkeypatch: Any) -> None:
    tb, options = parse_url("tinybird://p.eyJ0b2tlbg@api.us-east.tinybird.co?buffered=1&batch_rows=500")
    assert (tb.token, tb.host, tb.datasource) == (
        "p.eyJ0b2tlbg",
        "https://api.us-east.tinybird.co",
        "audit_log",
    )
    assert options == {"buffered": True, "batch_rows": 500}
    tb, _ = parse_url("tinybird://?token=abc&region=us-east&datasource=events")
    assert (tb.token, tb.host, tb.datasource) == ("abc", "https://api.us-east.tinybird.co", "events")
    tb, _ = parse_url("tinybird://abc@aws-eu-west-1")
    assert tb.host == "https://api.eu-west-1.aws.tinybird.co"
    tb, _ = parse_url("tinybird+http://abc@127.0.0.1:7181")
    assert tb.host == "http://127.0.0.1:7181"
    monkeypatch.setenv("TINYBIRD_TOKEN", "from-env")
    monkeypatch.delenv("TINYBIRD_HOST", raising=False)
    tb, _ = parse_url("tinybird://")
    assert (tb.token, tb.host) == ("from-env", "https://api.tinybird.co")
    monkeypatch.delenv("TINYBIRD_TOKEN")
    with pytest.raises(ValueError, match="no token"):
        parse_url("tinybird://api.tinybird.co")
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        parse_url("tinybird://t@api.tinybird.co?colour=red")
    with pytest.raises(ValueError, match="needs a host"):
        parse_url("tinybird+http://?token=t")


def test_a_long_uid_list_goes_in_a_post_body_and_falls_back_to_get(scripted: Scripted) -> None:
    uids = [f"0190a1b2-0000-7000-8000-{n:012d}" for n in range(500)]
    found = json.dumps({"data": [{"uid": uids[3], "id": "m", "action": "a.b", "timestamp": 1}]})
    scripted.answers = [(200, {}, found), (405, {}, '{"error": "no POST here"}'), (200, {}, found)]
    with _store(scripted.url) as store:
        assert store.stored_uids("acme", uids) == {uids[3]}  # one request for 500 uids
        post = scripted.seen[0]
        assert post.method == "POST" and post.path == "/v0/pipes/list_audit_log.json"
        assert json.loads(post.body) == {"ws": "acme", "uids": ",".join(sorted(uids)), "limit": "500"}
        assert store.stored_uids("acme", uids) == {uids[3]}  # a server without POST on pipes: GET
    assert [s.method for s in scripted.seen] == ["POST", "POST", "GET"]
    assert "uids=" in scripted.seen[2].path
    short = Query(workspace="acme", uid="x")
    with _store(scripted.url) as store:
        scripted.answers = [(200, {}, json.dumps({"data": []}))]
        assert store.query(short) == []
    assert scripted.seen[-1].method == "GET"  # short parameters stay in the URL
