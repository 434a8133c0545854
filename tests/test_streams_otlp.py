"""OTLP/HTTP log streams, checked with what nobody here wrote: the receiver decodes every
request with the official ``opentelemetry-proto`` messages (protobuf's JSON mapping, strict:
an unknown or misspelt field fails the test)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import SEVERITY_NUMBER_INFO

from auditbird import AuditLog
from auditbird.streams import Backoff, StreamRegistry, StreamRunner

from .live_server import EXE, free_port
from .streams_support import first_occurrences, wait_for


class Collector:
    """An OTLP/HTTP logs receiver on loopback: keeps each decoded request it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.status = 200
        self.answer: dict[str, Any] = {}
        self.requests: list[tuple[str, dict[str, str], ExportLogsServiceRequest]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                message = json_format.Parse(raw, ExportLogsServiceRequest())  # strict
                status = collector.status
                if 200 <= status < 300:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    collector.requests.append((self.path, headers, message))
                body = json.dumps(collector.answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def records(self) -> list[Any]:
        return [
            record
            for _, _, message in self.requests
            for resource in message.resource_logs
            for scope in resource.scope_logs
            for record in scope.log_records
        ]

    def uids(self) -> list[str]:
        return [json.loads(r.body.string_value)["uid"] for r in self.records()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


def cli(store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "--store", store, "--workspace", "acme", "streams", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def publish(store: str, n: int, workspace: str = "acme", action: str = "monitor.down") -> list[str]:
    with AuditLog(store, workspace=workspace) as log:
        events = log.publish_many(
            [{"id": f"monitor:{i}", "action": action, "actor": {"id": "u7", "name": "Ada"}} for i in range(n)]
        )
    return [e.uid for e in events]


def run(store: str, **kw: Any) -> None:
    runner = StreamRunner(store, backoff=Backoff(0.001, 0.02), batch=4, **kw)
    try:
        runner.run()
        assert not runner.errors, runner.errors
    finally:
        runner.close()


def test_otlp_stream_sends_every_event_as_an_otel_log_record_in_order(
    tmp_path: Path, collector: Collector
) -> None:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    added = cli(store, "add", "otel", "--otlp", collector.url, "--header", "Authorization: Api-Token s3cr3t")
    assert added.returncode == 0, added.stderr
    uids = publish(store, 10)
    publish(store, 3, workspace="other")
    with AuditLog(store, workspace="acme") as log:
        stamps = {e.uid: e.timestamp for e in log.list(limit=100).events}
    run(store)
    assert collector.uids() == uids
    assert [len(list(m.resource_logs[0].scope_logs[0].log_records)) for _, _, m in collector.requests] == [
        4,
        4,
        2,
    ]
    path, headers, message = collector.requests[0]
    assert path == "/v1/logs" and headers["authorization"] == "Api-Token s3cr3t"
    assert headers["content-type"] == "application/json"
    resource = {a.key: a.value.string_value for a in message.resource_logs[0].resource.attributes}
    assert resource == {"service.name": "auditbird"}
    assert message.resource_logs[0].scope_logs[0].scope.name == "auditbird"
    for record in collector.records():
        event = json.loads(record.body.string_value)
        attributes = {a.key: a.value.string_value for a in record.attributes}
        assert record.time_unix_nano == stamps[event["uid"]] * 1_000_000
        assert record.observed_time_unix_nano >= record.time_unix_nano
        assert record.severity_number == SEVERITY_NUMBER_INFO and record.severity_text == "INFO"
        assert record.event_name == "monitor.down" == event["action"]
        assert attributes == {
            "auditbird.uid": event["uid"],
            "auditbird.workspace": "acme",
            "auditbird.event_id": event["id"],
            "auditbird.action": "monitor.down",
            "user.id": "u7",
            "auditbird.actor.name": "Ada",
        }
    listed = cli(store, "list", "--json")
    assert "s3cr3t" not in listed.stdout and json.loads(listed.stdout)["options"]["secret_headers"] == "***"


def test_otlp_collector_unavailable_is_retried_and_a_refusal_becomes_dead_letters(
    tmp_path: Path, collector: Collector
) -> None:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    assert (
        cli(store, "add", "otel", "--otlp", collector.url + "/v1/logs", "--max-attempts", "2").returncode == 0
    )
    # 503: retried (the specification's retryable answer) until the collector takes it.
    collector.status = 503
    uids = publish(store, 3)
    stop = threading.Event()
    runner = StreamRunner(store, backoff=Backoff(0.01, 0.05), stop=stop)
    thread = threading.Thread(target=runner.run, kwargs={"follow": True, "poll_interval": 0.02})
    thread.start()
    try:
        with StreamRegistry.for_store(store) as reg:
            wait_for(lambda: "answered 503" in (reg.get("acme", "otel").last_error or ""), what="a 503")
            collector.status = 200
            wait_for(lambda: len(collector.uids()) >= 3, what="the batch after the outage")
    finally:
        stop.set()
        thread.join()
        runner.close()
    assert first_occurrences(collector.uids()) == uids
    # 400 and a partial success: refusals, dead letters after --max-attempts, nothing skipped.
    collector.status = 400
    refused = publish(store, 2)
    run(store)
    collector.status, collector.answer = (
        200,
        {"partialSuccess": {"rejectedLogRecords": "1", "errorMessage": "too big"}},
    )
    partly = publish(store, 2)
    run(store)
    with StreamRegistry.for_store(store) as reg:
        stream = reg.get("acme", "otel")
        letters = reg.dead_letters(stream.id)
    assert [d.row.uid for d in letters] == refused + partly
    assert "answered 400" in letters[0].error and "rejected 1 of 2 log records: too big" in letters[-1].error


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--otlp", "grpc://collector:4317"], "http:// or https://"),
        (["--otlp", "http://c:4318", "--header", "no colon"], "'Name: value'"),
        (["--otlp", "http://c:4318", "--header", "Bad Name: x"], "header name"),
    ],
)
def test_otlp_bad_input_is_refused_and_nothing_stored(tmp_path: Path, args: list[str], says: str) -> None:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    bad = cli(store, "add", "otel", *args)
    assert bad.returncode == 2 and says in bad.stderr, bad.stderr
    with StreamRegistry.for_store(store) as reg:
        assert reg.list() == []
