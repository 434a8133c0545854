"""Actions auditbird records itself (``retention.*``, ``audit_log.*``) cannot be published by a
writer: a write key that could publish ``retention.apply`` or ``audit_log.subject_erased`` could
forge the proof that events expired or a subject was erased. auditbird's own records still work."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from auditbird import AuditLog, AuditValidationError
from auditbird.emit import emit
from auditbird.reserved import system_events
from auditbird.stores.service import ServiceStore

from .conftest import MakeLog
from .plugins.service import LiveServer

RESERVED = [
    "retention.apply",
    "retention.set",
    "audit_log.subject_erased",
    "audit_log.stream_added",
    "audit_log.viewed",
    "audit_log.exported",
    "Retention.apply",  # a look-alike beside the real records
    "AUDIT_LOG.subject_erased",
    "retention.apply.extra",
]


@pytest.mark.parametrize("action", RESERVED)
def test_a_write_key_cannot_publish_a_reserved_action(live_server: LiveServer, action: str) -> None:
    ws = f"reserved-{action.lower()}"
    key = live_server.mint(ws, "write")
    with live_server.client(key) as c:
        r = c.post("/v1/events", json={"id": "forged:1", "action": action})
        assert r.status_code == 422, r.text
        assert action in r.text and "records itself" in r.text and "choose an action" in r.text
        batch = [{"id": "ok:1", "action": "monitor.down"}, {"id": "forged:2", "action": action}]
        r = c.post("/v1/events", json=batch)
        assert r.status_code == 422
        assert [e["index"] for e in r.json()["errors"]] == [1]
    with live_server.client(live_server.mint(ws, "read")) as c:
        ids = {e["id"] for e in c.get("/v1/events", params={"action": action}).json()["data"]}
        ids |= {e["id"] for e in c.get("/v1/events").json()["data"]}
        assert not ids & {"forged:1", "forged:2", "ok:1"}  # nothing stored, not even the good one


def test_an_own_resource_that_only_looks_similar_is_allowed(live_server: LiveServer) -> None:
    key = live_server.mint("reserved-ok", "write")
    with live_server.client(key) as c:
        for action in ("billing.retention_changed", "retentions.apply", "my_audit_log.viewed"):
            assert c.post("/v1/events", json={"id": "x:1", "action": action}).status_code == 201


def test_every_store_refuses_reserved_actions_from_publish(make_log: MakeLog) -> None:
    log = make_log("reserved-lib")
    with pytest.raises(AuditValidationError, match="'retention.apply' is in the 'retention' namespace"):
        log.publish_audit_log({"id": "forged:1", "action": "retention.apply"})
    with pytest.raises(AuditValidationError) as caught:
        log.publish_many([{"id": "a:1", "action": "a.b"}, {"id": "forged:2", "action": "audit_log.viewed"}])
    assert [p.index for p in caught.value.problems] == [1]
    assert log.list(limit=10).events == []
    if isinstance(log.store, ServiceStore):  # over HTTP an API key publishes: the server refuses
        with system_events(), pytest.raises(AuditValidationError, match="retention.set"):
            log.publish_audit_log({"id": "retention", "action": "retention.set"})
        return
    with system_events():  # the library's own records, and an operator's by hand
        stored = log.publish_audit_log({"id": "retention", "action": "retention.set"})
    assert [e.uid for e in log.list(limit=10).events] == [stored.uid]


def test_system_events_cover_only_the_block(tmp_path: Path) -> None:
    with AuditLog(f"sqlite:///{tmp_path / 'a.db'}") as log:
        with system_events():
            log.publish_audit_log({"id": "a", "action": "audit_log.viewed"})
        with pytest.raises(AuditValidationError):
            log.publish_audit_log({"id": "b", "action": "audit_log.viewed"})


def test_emit_refuses_reserved_actions(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
    conn.execute("BEGIN")
    event: dict[str, Any] = {"id": "forged:1", "action": "audit_log.subject_erased"}
    with pytest.raises(AuditValidationError, match="audit_log.subject_erased"):
        emit(conn, event)
    conn.execute("ROLLBACK")
    conn.close()


def test_the_services_own_records_are_still_written(live_server: LiveServer) -> None:
    admin = live_server.mint("reserved-own", "admin")
    with live_server.client(admin) as c:
        assert c.post("/v1/events", json={"id": "x:1", "action": "monitor.down"}).status_code == 201
        assert c.get("/v1/events").status_code == 200
        viewed = c.get("/v1/events", params={"action": "audit_log.viewed"}).json()["data"]
    assert viewed and all(e["action"] == "audit_log.viewed" for e in viewed)


def test_emit_on_postgres_refuses_reserved_actions_and_stores_nothing(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        with pytest.raises(AuditValidationError, match="retention.apply"):
            emit(conn, {"id": "forged:pg", "action": "retention.apply", "workspace": "reserved-pg"})
        conn.rollback()
        tables = conn.execute("SELECT to_regclass('audit_log')").fetchone()
        if tables is not None and tables[0] is not None:
            found = conn.execute("SELECT count(*) FROM audit_log WHERE id = 'forged:pg'").fetchone()
            assert found == (0,)
