"""Group commit in the library: threads publishing to one SQLite log share durable commits.

Every test here runs real threads over a real file. To make a group form deterministically
(never by timing), a test holds the store's write lock, as an in-flight commit does, while the
publishers queue behind it; then it lets go and counts the commits.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from auditbird import AuditLog, AuditValidationError
from auditbird.codec import encode
from auditbird.event import Event
from auditbird.stores.group_commit import GroupCommit
from auditbird.stores.sqlite import SQLiteStore


def wait_until(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Poll ``check`` (a condition, not a timing threshold: the deadline only ends a hang)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def queued(store: SQLiteStore) -> int:
    return len(store._group._queue)


def run_held(store: SQLiteStore, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` in threads while the store's write lock is held, so that all of them
    queue (in order); release it; return each call's result or exception, in order."""
    out: list[Any] = [None] * len(calls)

    def worker(i: int) -> None:
        try:
            out[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - the test inspects each outcome
            out[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    with store._lock:
        for n, t in enumerate(threads, 1):  # one at a time: the queue's order is the list's
            t.start()
            wait_until(lambda n=n: queued(store) == n, f"{n} queued publishes")
    for t in threads:
        t.join(60)
    return out


def positions(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [p for (p,) in conn.execute("SELECT position FROM audit_log ORDER BY position")]
    finally:
        conn.close()


def test_many_threads_publishing_lose_nothing_and_positions_stay_gap_free(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    threads_n, each = 16, 40
    log = AuditLog(f"sqlite:///{path}")
    acked: list[list[str]] = [[] for _ in range(threads_n)]

    def publisher(t: int) -> None:
        for i in range(each):
            e = log.publish_audit_log({"id": f"m:{t}", "action": "monitor.down", "metadata": {"i": i}})
            acked[t].append(e.uid)

    workers = [threading.Thread(target=publisher, args=(t,)) for t in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    group = log.store._group  # type: ignore[attr-defined]
    log.close()

    uids = [u for per in acked for u in per]
    assert len(uids) == len(set(uids)) == threads_n * each
    with AuditLog(f"sqlite:///{path}") as again:
        stored = [e.uid for e in again.iter_events()]
        assert sorted(stored) == sorted(uids)  # none lost, none duplicated
        for t in range(threads_n):  # each thread's events in its own order, one stream each
            history = [e.metadata["i"] for e in again.history(f"m:{t}")]  # type: ignore[index]
            assert history == list(range(each))
    assert positions(path) == list(range(1, threads_n * each + 1))
    assert group.requests == threads_n * each
    assert group.commits <= group.requests


def test_publishes_queued_behind_a_commit_share_the_next_one(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    log = AuditLog(store)
    calls = [
        (lambda i=i: log.publish_audit_log({"id": f"m:{i}", "action": "monitor.down"})) for i in range(12)
    ]
    results = run_held(store, calls)
    assert all(isinstance(r, Event) for r in results)
    # The first publish led alone (the lock it waited on was the "commit in flight"); the eleven
    # that queued behind it went in one commit.
    assert (store._group.commits, store._group.requests) == (2, 12)
    assert len(log.list(limit=100).events) == 12
    log.close()


def test_a_lone_publisher_commits_at_once_and_alone(tmp_path: Path) -> None:
    with AuditLog(f"sqlite:///{tmp_path / 'a.db'}") as log:
        for i in range(20):
            log.publish_audit_log({"id": "m:1", "action": "monitor.down", "metadata": {"i": i}})
        group = log.store._group  # type: ignore[attr-defined]
        assert (group.commits, group.requests) == (20, 20)
        assert queued(log.store) == 0  # type: ignore[arg-type]


def test_a_failing_publish_fails_alone_and_the_rest_of_its_group_commits(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    log = AuditLog(store)
    log.publish_audit_log({"id": "s:1", "action": "a.b"})  # the stream is at revision 1
    taken = log.publish_audit_log({"id": "m:0", "action": "a.b"})
    calls: list[Callable[[], Any]] = [
        lambda: log.publish_audit_log({"id": "m:1", "action": "a.b"}),
        # a stale revision: conflicts inside the group
        lambda: log.publish_many([{"id": "s:1", "action": "x.y"}] * 3, expected_revision=0),
        lambda: log.publish_audit_log({"id": "m:2", "action": "a.b"}),
        # the right revision: commits, so the next one (the same expectation) conflicts
        lambda: log.publish_audit_log({"id": "s:1", "action": "c.d"}, expected_revision=1),
        lambda: log.publish_audit_log({"id": "s:1", "action": "e.f"}, expected_revision=1),
        # a uid already stored: stores nothing, answers the first copy
        lambda: log.publish_audit_log({"id": "other", "action": "g.h", "uid": taken.uid}),
        lambda: log.publish_many([{"id": "m:3", "action": "a.b"}, {"id": "m:4", "action": "a.b"}]),
    ]
    results = run_held(store, calls)
    assert [type(r).__name__ for r in results] == [
        "Event",
        "ConflictError",
        "Event",
        "Event",
        "ConflictError",
        "Event",
        "list",
    ]
    assert "at revision 1, not 0" in str(results[1])
    assert "at revision 2, not 1" in str(results[4])
    assert results[5].id == "m:0" and results[5].uid == taken.uid  # the first copy wins
    assert store._group.commits == 4  # two publishes before, the held one, then the group of six
    assert [e.action for e in log.history("s:1")] == ["a.b", "c.d"]
    assert sorted(e.id for e in log.list(limit=100).events) == sorted(
        ["s:1", "s:1", "m:0", "m:1", "m:2", "m:3", "m:4"]
    )
    assert positions(tmp_path / "a.db") == list(range(1, 8))
    log.close()


def test_a_row_the_database_refuses_fails_its_own_append_only(tmp_path: Path) -> None:
    """A failure after some of a request's rows were written (the third row breaks a NOT NULL
    constraint) rolls back that request's savepoint, not its neighbours' rows."""
    store = SQLiteStore(tmp_path / "a.db")
    good = [encode(Event.model_validate({"id": f"g:{i}", "action": "a.b"})) for i in range(3)]
    bad = [encode(Event.model_validate({"id": f"b:{i}", "action": "a.b"})) for i in range(3)]
    bad[2] = bad[2]._replace(id=None)  # type: ignore[arg-type]
    more = [encode(Event.model_validate({"id": "h:1", "action": "a.b"}))]
    results = run_held(
        store,
        [lambda: store.append(good[:1]), lambda: store.append(bad), lambda: store.append(good[1:] + more)],
    )
    assert results[0] == {} and results[2] == {}
    assert isinstance(results[1], sqlite3.IntegrityError)
    ids = sorted(r[0] for r in sqlite3.connect(tmp_path / "a.db").execute("SELECT id FROM audit_log"))
    assert ids == ["g:0", "g:1", "g:2", "h:1"]
    assert positions(tmp_path / "a.db") == [1, 2, 3, 4]
    store.close()


def test_an_invalid_event_is_rejected_before_it_joins_a_group(tmp_path: Path) -> None:
    with AuditLog(f"sqlite:///{tmp_path / 'a.db'}") as log:
        with pytest.raises(AuditValidationError, match="action"):
            log.publish_audit_log({"id": "m:1", "action": "not an action"})
        assert log.store._group.requests == 0  # type: ignore[attr-defined]


def test_a_failed_commit_fails_every_request_of_its_group() -> None:
    """The commit callback itself raising (the disk failed at COMMIT): nothing was stored, so
    every request of the group gets the error, and the queue moves on."""
    calls = 0

    def commit(items: Any) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("disk gone")
        return list(items)

    gate = threading.Lock()
    group: GroupCommit[int, int] = GroupCommit(
        lambda items: (gate.acquire(), gate.release(), commit(items))[2]
    )
    out: dict[int, Any] = {}

    def submit(i: int) -> None:
        try:
            out[i] = group.submit(i)
        except OSError as exc:
            out[i] = exc

    gate.acquire()
    threads = [threading.Thread(target=submit, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    wait_until(lambda: len(group._queue) == 5, "five queued requests")
    gate.release()
    for t in threads:
        t.join(30)
    assert len(out) == 5
    firsts = [i for i, v in out.items() if v == i]
    failed = [i for i, v in out.items() if isinstance(v, OSError)]
    assert len(firsts) == 1 and len(failed) == 4  # the leader alone, then the group of four
    assert group.submit(9) == 9  # the next commit works


def test_a_uid_published_twice_in_one_group_keeps_the_first_copy(tmp_path: Path) -> None:
    """The group goes in as one batch (no stream revisions): what each publish answers is its
    own share of that batch, and a uid repeated across publishes stores its first copy once."""
    store = SQLiteStore(tmp_path / "a.db")
    log = AuditLog(store)
    earlier = log.publish_audit_log({"id": "m:0", "action": "a.b"})
    uid = "01890000-0000-7000-8000-000000000001"
    calls: list[Callable[[], Any]] = [
        lambda: log.publish_audit_log({"id": "m:1", "action": "a.b"}),
        lambda: log.publish_many(
            [{"id": "first", "action": "a.b", "uid": uid}, {"id": "m:2", "action": "a.b"}]
        ),
        lambda: log.publish_audit_log({"id": "second", "action": "c.d", "uid": uid}),
        lambda: log.publish_many(
            [{"id": "m:3", "action": "a.b"}, {"id": "again", "action": "a.b", "uid": earlier.uid}]
        ),
    ]
    results = run_held(store, calls)
    assert store._group.commits == 3  # the earlier publish, the held leader, the group of three
    assert [e.id for e in results[1]] == ["first", "m:2"]
    assert (results[2].id, results[2].action, results[2].uid) == ("first", "a.b", uid)
    assert [e.id for e in results[3]] == ["m:3", "m:0"]  # the stored copy of the earlier uid
    stored = sorted(e.id for e in log.list(limit=100).events)
    assert stored == ["first", "m:0", "m:1", "m:2", "m:3"]
    assert positions(tmp_path / "a.db") == [1, 2, 3, 4, 5]
    log.close()
