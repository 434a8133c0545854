"""`auditbird serve` applies retention on its schedule (AUDITBIRD_RETENTION_INTERVAL) and says so."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from auditbird import AuditLog
from auditbird.event import now_ms
from auditbird.provable.verify import verify_store
from auditbird.retention import set_policy

from .plugins.service import start_server

DAY = 86_400_000
pytestmark = pytest.mark.slow  # a real server subprocess


def test_serve_removes_expired_events_on_its_schedule_and_records_the_run(tmp_path: Path) -> None:
    db = tmp_path / "srv" / "service.db"
    db.parent.mkdir()
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    now = now_ms()
    for i in range(3):
        log.publish_audit_log({"id": "u:1", "action": "user.login", "timestamp": now - (400 + i) * DAY})
    young = log.publish_audit_log({"id": "m:1", "action": "monitor.down"})
    set_policy(log, "365d")
    log.close()

    server = start_server(db.parent, AUDITBIRD_RETENTION_INTERVAL="0.2")
    try:
        reader = AuditLog(f"sqlite:///{db}", workspace="acme")
        deadline = time.monotonic() + 60  # a generous bound, not a measurement
        runs = []
        while not runs and time.monotonic() < deadline:
            runs = reader.list(action="retention.apply", limit=5).events
            time.sleep(0.1)
        assert len(runs) == 1 and runs[0].metadata["removed"] == 3
        assert {e.action for e in reader.list(limit=50).events} == {
            "monitor.down",
            "retention.set",
            "retention.apply",
        }
        assert reader.get_audit_log(event_id="m:1")[0].uid == young.uid
        report = verify_store(reader)
        assert report.ok and report.expired == (3, 1, 3), report.message()
        reader.close()
    finally:
        server.stop()
    assert "retention: workspace 'acme': removed 3 events" in server.log_path.read_text()


def test_a_bad_interval_stops_serve_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="AUDITBIRD_RETENTION_INTERVAL='soon'"):
        start_server(tmp_path, AUDITBIRD_RETENTION_INTERVAL="soon")
