"""A stream's lag: its workspace's events that match its filter and are past its position,
read over a bounded number of committed rows."""

from __future__ import annotations

import time
from pathlib import Path

from auditbird import AuditLog
from auditbird.streams import StreamFilter, StreamRegistry, StreamTarget, create_stream, stream_statuses


def test_lag_counts_only_its_workspace_and_filter_and_says_when_it_stopped_counting(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    with AuditLog(store, workspace="acme") as acme, AuditLog(store, workspace="other") as other:
        for i in range(10):
            acme.publish_audit_log({"id": "m:1", "action": "monitor.down", "timestamp": an_hour_ago + i})
            acme.publish_audit_log({"id": "m:1", "action": "monitor.up"})
            other.publish_audit_log({"id": "m:1", "action": "monitor.down"})
    create_stream(
        store,
        "acme",
        "downs",
        StreamTarget.ndjson(str(tmp_path / "x.ndjson")),
        filter=StreamFilter(actions=("monitor.down",)),
    )
    (full,) = stream_statuses(store, "acme")
    assert (full.events_behind, full.behind_capped, full.position) == (10, False, 0)
    assert 3_500 < full.seconds_behind < 4_000  # the oldest waiting event is an hour old
    (cut,) = stream_statuses(store, "acme", scan_limit=12)  # 12 of the 30 committed rows
    assert (cut.events_behind, cut.behind_capped) == (4, True)
    assert stream_statuses(store, "other") == []
    with StreamRegistry.for_store(store) as reg:
        reg.set_paused("acme", "downs", True)
    (paused,) = stream_statuses(store, "acme")
    assert paused.stream.paused and paused.to_dict()["paused"] is True
