"""A stream's lag: its workspace's events that match its filter and are past its position,
read over a bounded number of committed rows."""

from __future__ import annotations

import time
from pathlib import Path

from auditbird import AuditLog
from auditbird.row import Row
from auditbird.stores.sqlite import SQLiteStore
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


class _CountingStore:
    """The real SQLite store, counting the committed rows a status read pulls from it."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store, self.path, self.rows = store, store.path, 0

    def read_committed(self, after: int, limit: int) -> list[Row]:
        rows: list[Row] = self.store.read_committed(after, limit)
        self.rows += len(rows)
        return rows


def test_one_status_read_scans_a_bounded_number_of_rows_however_many_streams_lag(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditLog(store_url, workspace="acme") as log:
        log.publish_many([{"id": f"m:{i}", "action": "monitor.down"} for i in range(3_000)])
    for i in range(30):  # every one of them 3,000 events behind
        create_stream(store_url, "acme", f"s{i:02}", StreamTarget.ndjson(str(tmp_path / f"{i}.ndjson")))
    create_stream(
        store_url, "acme", "zz-current", StreamTarget.ndjson(str(tmp_path / "c.ndjson")), from_now=True
    )
    store = SQLiteStore.from_url(store_url)
    try:
        counting = _CountingStore(store)
        statuses = stream_statuses(store_url, "acme", store=counting, scan_limit=1_000, scan_budget=5_000)
    finally:
        store.close()
    # 31 streams at up to 1,000 rows each would be 31,000; the budget holds it to 5,000, plus
    # per stream at most a one-row look and the one row that says whether more lie past the count.
    assert counting.rows <= 5_000 + 2 * 31
    assert [s.stream.name for s in statuses] == [f"s{i:02}" for i in range(30)] + ["zz-current"]
    # Four full counts (1,000 rows and the row past them each), then what the budget has left.
    counted = [s for s in statuses if s.events_behind >= 1_000]
    assert len(counted) == 4 and all(s.behind_capped for s in statuses[:30])
    assert all(s.events_behind >= 1 for s in statuses[:30])  # the rest: "at least one"
    current = statuses[-1]
    assert (current.events_behind, current.behind_capped) == (0, False)  # caught up: exact
