"""Subscriptions: new events as they commit, by durable, gap-free position."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from auditbird import AuditLog
from auditbird.history import Recorded

PUBLISHER = """
import sys, time
from auditbird import AuditLog
path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with AuditLog(f"sqlite:///{path}") as log:
    for i in range(n):
        meta = {"who": who, "i": i}
        log.publish_audit_log({"id": f"monitor:{i % 3}", "action": "monitor.checked", "metadata": meta})
        time.sleep(0.002)
"""


def test_follow_yields_events_committed_by_other_processes_as_they_commit(db_path: Path) -> None:
    log = AuditLog(f"sqlite:///{db_path}")
    log.publish_audit_log(
        {"id": "monitor:0", "action": "monitor.checked", "metadata": {"who": "before", "i": 0}}
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", PUBLISHER, str(db_path), who, "40"])
        for who in ("a", "b", "c")
    ]
    seen: list[Recorded] = []
    for recorded in log.follow(after=1, poll_interval=0.01, idle_timeout=30):
        seen.append(recorded)
        if len(seen) == 120:
            break
    for w in writers:
        assert w.wait(30) == 0
    # Gap-free and in commit order: positions 2..121, each exactly once, while 3 processes wrote.
    assert [r.position for r in seen] == list(range(2, 122))
    for who in "abc":  # every writer's own order is kept
        assert [r.event.metadata["i"] for r in seen if r.event.metadata["who"] == who] == list(range(40))
    assert [r.event.uid for r in seen] == [r.event.uid for r in log.follow(after=1, idle_timeout=0)]


def test_a_consumer_resumes_from_its_stored_position_and_misses_nothing(db_path: Path) -> None:
    log = AuditLog(f"sqlite:///{db_path}")
    log.publish_many(
        [{"id": "monitor:1", "action": "monitor.checked", "metadata": {"i": i}} for i in range(5)]
    )
    first = list(log.follow(after=0, idle_timeout=0))
    checkpoint = first[-1].position
    assert [r.position for r in first] == [1, 2, 3, 4, 5] and checkpoint == 5
    log.publish_many(
        [{"id": "monitor:1", "action": "monitor.checked", "metadata": {"i": i}} for i in range(5, 8)]
    )
    again = list(AuditLog(f"sqlite:///{db_path}").follow(after=checkpoint, idle_timeout=0))
    assert [(r.position, r.event.metadata["i"]) for r in again] == [(6, 5), (7, 6), (8, 7)]


def test_follow_pages_through_a_backlog_larger_than_a_batch(sqlite_log: AuditLog) -> None:
    sqlite_log.publish_many(
        [{"id": "s:1", "action": "thing.done", "metadata": {"i": i}} for i in range(1_234)]
    )
    positions = [r.position for r in sqlite_log.follow(batch=100, idle_timeout=0)]
    assert positions == list(range(1, 1_235))


def test_follow_is_scoped_and_filtered(db_path: Path) -> None:
    acme = AuditLog(f"sqlite:///{db_path}", workspace="acme")
    other = AuditLog(f"sqlite:///{db_path}", workspace="other")
    acme.publish_audit_log({"id": "monitor:1", "action": "monitor.checked"})
    other.publish_audit_log({"id": "monitor:1", "action": "monitor.checked"})
    acme.publish_audit_log({"id": "monitor:2", "action": "monitor.paused"})
    acme.publish_audit_log({"id": "monitor:1", "action": "monitor.paused"})
    assert [r.position for r in acme.follow(idle_timeout=0)] == [1, 3, 4]  # positions are the log's
    assert [r.position for r in acme.follow(action="monitor.paused", idle_timeout=0)] == [3, 4]
    assert [r.position for r in acme.follow(event_id="monitor:1", idle_timeout=0)] == [1, 4]
    assert [r.event.workspace for r in other.follow(idle_timeout=0)] == ["other"]


def test_follow_stops_when_told(sqlite_log: AuditLog) -> None:
    stop = threading.Event()
    got: list[int | None] = []

    def consume() -> None:
        for r in sqlite_log.follow(poll_interval=0.01, stop=stop):
            got.append(r.position)

    t = threading.Thread(target=consume)
    t.start()
    sqlite_log.publish_audit_log({"id": "s:1", "action": "thing.done"})
    for _ in range(500):
        if got:
            break
        stop.wait(0.01)
    stop.set()
    t.join(5)
    assert not t.is_alive() and got == [1]
