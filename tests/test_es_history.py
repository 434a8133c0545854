"""Stream history: oldest first in commit order, page by page, from a revision, as of a time."""

from __future__ import annotations

from typing import Any

import pytest

from auditbird import AuditLog, AuditValidationError, Query, UnsupportedOperation
from auditbird.stores.capabilities import ReplayStore, StreamStore
from auditbird.stores.sqlite import SQLiteStore

T0 = 1_767_225_600_000


def _publish(log: AuditLog, n: int, stream: str = "monitor:1", **kw: Any) -> None:
    log.publish_many(
        [
            {"id": stream, "action": "check.ran", "timestamp": T0 + i * 1000, "metadata": {"n": i}, **kw}
            for i in range(n)
        ]
    )


class Counting:
    """A real SQLite store that records every query it answers; declares only the base tier."""

    def __init__(self, store: SQLiteStore) -> None:
        self.inner = store
        self.queries: list[Query] = []
        self.path = store.path

    def append(self, rows: Any, **kw: Any) -> None:
        self.inner.append(rows, **kw)

    def query(self, q: Query) -> list[Any]:
        self.queries.append(q)
        return self.inner.query(q)

    def close(self) -> None:
        self.inner.close()


class CountingStore(Counting, StreamStore):
    """Passes the SQLite store's stream tier on."""

    def revision(self, workspace: str, event_id: str) -> int:
        return self.inner.revision(workspace, event_id)


def test_history_is_oldest_first_in_commit_order_even_when_timestamps_are_not(sqlite_log: AuditLog) -> None:
    # Published later with an earlier timestamp: history is what was committed, in that order.
    sqlite_log.publish_audit_log(
        {"id": "monitor:1", "action": "check.ran", "timestamp": T0 + 5, "metadata": {"n": 0}}
    )
    sqlite_log.publish_audit_log(
        {"id": "monitor:1", "action": "check.ran", "timestamp": T0 + 1, "metadata": {"n": 1}}
    )
    sqlite_log.publish_audit_log(
        {"id": "monitor:2", "action": "check.ran", "timestamp": T0, "metadata": {"n": 9}}
    )
    assert [e.metadata["n"] for e in sqlite_log.history("monitor:1")] == [0, 1]


def test_history_pages_with_keyset_queries_and_a_bounded_page(db_path: Any) -> None:
    store = CountingStore(SQLiteStore(db_path))
    log = AuditLog(store)
    _publish(log, 2_500)
    _publish(log, 10, stream="monitor:2")
    events = log.history("monitor:1", page_size=1_000)
    first = next(events)
    assert first.metadata == {"n": 0} and len(store.queries) == 1  # lazy: one page read so far
    rest = list(events)
    assert [e.metadata["n"] for e in [first, *rest]] == list(range(2_500))
    assert [q.limit for q in store.queries] == [1_000, 1_000, 1_000]
    assert [q.after_position for q in store.queries] == [None, 1_000, 2_000]
    assert all(q.order == "position" and q.event_id == "monitor:1" for q in store.queries)


def test_history_after_revision_skips_the_first_events(sqlite_log: AuditLog) -> None:
    _publish(sqlite_log, 10)
    assert [e.metadata["n"] for e in sqlite_log.history("monitor:1", after_revision=7)] == [7, 8, 9]
    assert list(sqlite_log.history("monitor:1", after_revision=10)) == []
    assert list(sqlite_log.history("monitor:1", after_revision=50)) == []
    assert len(list(sqlite_log.history("monitor:1", after_revision=0))) == 10


def test_history_as_of_keeps_what_had_happened_by_then(sqlite_log: AuditLog) -> None:
    _publish(sqlite_log, 10)
    assert [e.metadata["n"] for e in sqlite_log.history("monitor:1", as_of=T0 + 3_000)] == [0, 1, 2, 3]
    iso = "2026-01-01T00:00:02Z"  # T0 is 2026-01-01T00:00:00Z
    assert [e.metadata["n"] for e in sqlite_log.history("monitor:1", as_of=iso)] == [0, 1, 2]
    assert [e.metadata["n"] for e in sqlite_log.history("monitor:1", as_of=T0 + 3_000, after_revision=2)] == [
        2,
        3,
    ]


def test_history_is_scoped_to_the_workspace(db_path: Any) -> None:
    store = SQLiteStore(db_path)
    acme, other = AuditLog(store, workspace="acme"), AuditLog(store, workspace="other")
    _publish(acme, 3)
    _publish(other, 2)
    assert len(list(acme.history("monitor:1"))) == 3
    assert len(list(other.history("monitor:1"))) == 2


def test_history_needs_a_stream_id(sqlite_log: AuditLog) -> None:
    with pytest.raises(AuditValidationError, match="event_id"):
        list(sqlite_log.history(""))


class NoPositionStore(Counting, ReplayStore):
    """Like the Tinybird store: no commit order, (timestamp, uid) order only."""

    def query(self, q: Query) -> list[Any]:
        if q.order == "position":
            raise UnsupportedOperation("no positions here")
        return [r._replace(position=None) for r in super().query(q)]


class NewestFirstStore(Counting):
    """Like the service client: the base tier only, newest first."""

    def query(self, q: Query) -> list[Any]:
        if q.order != "desc":
            raise UnsupportedOperation("newest first only")
        return [r._replace(position=None) for r in super().query(q)]


def test_history_falls_back_to_time_order_on_stores_without_positions(db_path: Any) -> None:
    store = NoPositionStore(SQLiteStore(db_path))
    log = AuditLog(store)
    _publish(log, 25)
    assert [e.metadata["n"] for e in log.history("monitor:1", page_size=10)] == list(range(25))
    assert [q.order for q in store.queries] == ["asc", "asc", "asc"]  # never a "position" it lacks


def test_history_of_a_base_store_reads_newest_first_and_reverses(db_path: Any) -> None:
    store = NewestFirstStore(SQLiteStore(db_path))
    log = AuditLog(store)
    _publish(log, 25)
    assert [e.metadata["n"] for e in log.history("monitor:1", page_size=10)] == list(range(25))
    assert [e.metadata["n"] for e in log.history("monitor:1", after_revision=20, as_of=T0 + 21_000)] == [
        20,
        21,
    ]
    assert {q.order for q in store.queries} == {"desc"}


def test_after_revision_and_as_of_work_without_positions_too(db_path: Any) -> None:
    log = AuditLog(NoPositionStore(SQLiteStore(db_path)))
    _publish(log, 25)
    assert [e.metadata["n"] for e in log.history("monitor:1", after_revision=20, page_size=10)] == [
        20,
        21,
        22,
        23,
        24,
    ]
    assert [e.metadata["n"] for e in log.history("monitor:1", after_revision=20, as_of=T0 + 21_000)] == [
        20,
        21,
    ]
    assert list(log.history("monitor:1", after_revision=25)) == []
