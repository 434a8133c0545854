"""One damaged row (written by another tool, or by hand) must not break reads of the rest.

The row is read back marked (``schema_error``, with its uid), ``to_dict()`` never raises, and
through the service a GET by uid, a page of the stream and an export all carry on past it.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from auditbird import AuditLog
from auditbird.export import csv_lines, ndjson_lines
from tests.plugins.service import LiveServer

# Each: (column overrides of a stored row, what no longer fits).
DAMAGE = {
    "actor-not-object": {"actor": '"mallory"'},
    "actor-id-not-text": {"actor": '{"id": 5, "name": "x"}'},
    "targets-not-list": {"targets": '{"id": "1"}'},
    "targets-of-strings": {"targets": '["a", 1]'},
    "metadata-not-json": {"metadata": "not json"},
    "metadata-not-object": {"metadata": "[1, 2]"},
    "timestamp-text": {"timestamp": "yesterday"},
    "action-bad": {"action": "no verb"},
}


def damage(db: Path, uid: str, **columns: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        for column, value in columns.items():
            conn.execute(f"UPDATE audit_log SET {column} = ? WHERE uid = ?", (value, uid))  # noqa: S608
    conn.close()


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_to_dict_of_a_damaged_row_does_not_raise_and_says_why(db_path: Path, kind: str) -> None:
    with AuditLog(f"sqlite:///{db_path}") as log:
        log.publish_audit_log({"id": "doc:1", "action": "doc.shared", "uid": "bad", "targets": []})
    damage(db_path, "bad", **DAMAGE[kind])
    with AuditLog(f"sqlite:///{db_path}") as log:
        event = log.get("bad")
        assert event is not None and event.schema_error
        data = event.to_dict()
        json.dumps(data)  # JSON-ready
        assert data["uid"] == "bad" and data["schema_error"] == event.schema_error
        assert len(list(ndjson_lines([event]))) == 1
        (row,) = csv.DictReader(io.StringIO("".join(csv_lines([event])), newline=""))
        assert row["uid"] == "bad"


def test_the_service_reports_the_damaged_row_and_serves_the_rest(
    start_service: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = start_service(tmp_path / "svc")
    key = server.mint("acme", "admin")
    with server.client(key) as c:
        events = [{"id": f"doc:{i}", "action": "doc.shared", "uid": f"u{i}"} for i in range(5)]
        c.post("/v1/events", json=events).raise_for_status()
        damage(server.db_path, "u2", actor='"mallory"', targets='{"id": 1}')
        one = c.get("/v1/events/u2")
        page = c.get("/v1/events", params={"action": "doc.shared"})
        ndjson = c.get("/v1/export", params={"action": "doc.shared"})
        table = c.get("/v1/export", params={"action": "doc.shared", "format": "csv"})
    assert one.status_code == 200, one.text
    assert one.json()["uid"] == "u2" and "does not fit" in one.json()["schema_error"]
    assert page.status_code == 200, page.text
    assert sorted(e["uid"] for e in page.json()["data"]) == [f"u{i}" for i in range(5)]
    assert [e["uid"] for e in page.json()["data"] if "schema_error" in e] == ["u2"]
    assert ndjson.status_code == 200
    lines = [json.loads(x) for x in ndjson.text.splitlines()]
    assert sorted(e["uid"] for e in lines) == [f"u{i}" for i in range(5)]  # not cut at the bad row
    rows = list(csv.DictReader(io.StringIO(table.text, newline="")))
    assert sorted(r["uid"] for r in rows) == [f"u{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("kind", "shown"),
    [
        ("actor-not-object", '"mallory"'),
        ("targets-not-list", '{"id": "1"}'),
        ("targets-of-strings", '"a", 1'),
    ],
)
def test_the_cli_table_lists_a_damaged_row_as_stored_and_goes_on(
    db_path: Path, kind: str, shown: str
) -> None:
    from typer.testing import CliRunner

    from auditbird.cli import app

    with AuditLog(f"sqlite:///{db_path}") as log:
        log.publish_audit_log({"id": "doc:1", "action": "doc.shared", "uid": "bad", "timestamp": 1})
        log.publish_audit_log({"id": "doc:1", "action": "doc.viewed", "uid": "good", "timestamp": 2})
    damage(db_path, "bad", **DAMAGE[kind])
    result = CliRunner().invoke(app, ["--store", f"sqlite:///{db_path}", "log", "doc:1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split("\t")[2] for line in lines[1:3]] == ["doc.viewed", "doc.shared"]
    assert shown in lines[2].split("\t")
