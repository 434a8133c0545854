"""The embedded SQLite store: real files on disk, real processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from auditbird import AuditLog, ConflictError, Query, StoreUnavailable
from auditbird.stores.sqlite import SCHEMA_VERSION, SQLiteStore, build_select

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_python(code: str, *args: str, **kw) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def test_default_store_is_auditbird_db_in_cwd_or_auditbird_url(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUDITBIRD_URL", raising=False)
    with AuditLog() as log:
        log.publish_audit_log({"id": "m:1", "action": "a.b"})
    assert (tmp_path / "auditbird.db").exists()
    monkeypatch.setenv("AUDITBIRD_URL", f"sqlite:///{tmp_path / 'other.db'}")
    with AuditLog() as log:
        assert log.list().events == []
        log.publish_audit_log({"id": "m:1", "action": "a.b"})
    assert (tmp_path / "other.db").exists()


def test_file_is_wal_with_durable_commits_and_a_schema_version(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.schema_version() == SCHEMA_VERSION >= 1
    store.close()
    raw = sqlite3.connect(db_path)
    assert raw.execute("SELECT value FROM auditbird_meta WHERE key='schema_version'").fetchone() == (
        str(SCHEMA_VERSION),
    )


def test_a_file_from_a_newer_auditbird_is_refused(db_path: Path) -> None:
    SQLiteStore(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute("UPDATE auditbird_meta SET value = '99' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    with pytest.raises(StoreUnavailable, match="upgrade auditbird"):
        SQLiteStore(db_path)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (Query(event_id="monitor:1"), "audit_log_stream"),
        (Query(actions=("monitor.down",)), "audit_log_action"),
        (Query(actions=("monitor.down", "monitor.failed"), limit=50), "audit_log_action"),
        (Query(actor_id="42"), "audit_log_actor"),
        (Query(target_type="monitor", target_id="1"), "audit_target_id"),
        (Query(target_type="monitor"), "audit_target_type"),
        (Query(since=1, until=2), "audit_log_time"),
    ],
)
def test_lookups_use_an_index_not_a_scan(db_path: Path, query: Query, index: str) -> None:
    store = SQLiteStore(db_path)
    sql, params = build_select(query)
    plan = " | ".join(r[3] for r in store._conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert index in plan, plan
    assert "SCAN a" not in plan and "SCAN t" not in plan, plan


def test_several_processes_writing_one_file_lose_nothing(db_path: Path) -> None:
    SQLiteStore(db_path).close()
    code = """
        import sys
        from auditbird import AuditLog
        writer, n = sys.argv[1], int(sys.argv[2])
        with AuditLog("sqlite:///" + sys.argv[3]) as log:
            for i in range(n):
                if i % 10 == 0:
                    batch = [{"id": f"w{writer}", "action": "load.batch", "metadata": {"i": i, "j": j}}
                             for j in range(5)]
                    log.publish_many(batch)
                else:
                    log.publish_audit_log({"id": f"w{writer}", "action": "load.single", "metadata": {"i": i}})
        print("done")
    """
    procs = [run_python(code, str(w), "200", str(db_path)) for w in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with AuditLog(f"sqlite:///{db_path}") as log:
        for w in range(4):
            events = log.get_audit_log(f"w{w}")
            assert len(events) == 180 + 20 * 5
        positions = [
            r[0] for r in sqlite3.connect(db_path).execute("SELECT position FROM audit_log ORDER BY 1")
        ]
        assert positions == list(range(1, 4 * 280 + 1))  # gap-free commit order


def test_a_returned_publish_survives_kill_9(db_path: Path) -> None:
    code = """
        import sys
        from auditbird import AuditLog
        log = AuditLog("sqlite:///" + sys.argv[1])
        i = 0
        while True:
            e = log.publish_audit_log({"id": "crash:1", "action": "a.b", "metadata": {"i": i}})
            print(e.uid, flush=True)   # printed only after publish returned
            i += 1
    """
    proc = run_python(code, str(db_path))
    acknowledged = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        acknowledged.append(proc.stdout.readline().strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with AuditLog(f"sqlite:///{db_path}") as log:
        stored = {e.uid for e in log.get_audit_log("crash:1")}
    assert len(acknowledged) == 300
    assert set(acknowledged) <= stored


def test_duplicate_uids_in_one_batch_and_across_batches_store_once(sqlite_log: AuditLog) -> None:
    events = [
        {"id": "d:1", "action": "a.b", "uid": f"u-{i % 3}", "targets": [{"id": "1", "type": "x"}]}
        for i in range(9)
    ]
    sqlite_log.publish_many(events)
    sqlite_log.publish_many(events[:2] + [{"id": "d:1", "action": "a.c", "uid": "u-9"}])
    assert sorted(e.uid for e in sqlite_log.get_audit_log("d:1")) == ["u-0", "u-1", "u-2", "u-9"]
    assert len(sqlite_log.list(target_type="x", limit=100)) == 3  # no duplicate target rows


def test_repeated_targets_in_one_event_match_once(sqlite_log: AuditLog) -> None:
    sqlite_log.publish_audit_log(
        {"id": "t:1", "action": "a.b", "targets": [{"id": "1", "type": "m"}, {"id": "1", "type": "m"}]}
    )
    assert len(sqlite_log.list(target_type="m", target_id="1")) == 1


def test_expected_revision_lets_exactly_one_concurrent_writer_win(db_path: Path) -> None:
    SQLiteStore(db_path).close()
    code = """
        import sys
        from auditbird import AuditLog, ConflictError
        with AuditLog("sqlite:///" + sys.argv[1]) as log:
            try:
                log.publish_audit_log({"id": "race:1", "action": "a.b"}, expected_revision=0)
                print("won")
            except ConflictError:
                print("lost")
    """
    procs = [run_python(code, str(db_path)) for _ in range(6)]
    results = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(results) == ["lost"] * 5 + ["won"]
    with AuditLog(f"sqlite:///{db_path}") as log:
        assert log.revision("race:1") == 1
        with pytest.raises(ConflictError, match="revision 1, not 0"):
            log.publish_audit_log({"id": "race:1", "action": "a.b"}, expected_revision=0)
        log.publish_many(
            [{"id": "race:1", "action": "a.b"}] * 1 + [{"id": "race:1", "action": "a.c"}], expected_revision=1
        )
        assert log.revision("race:1") == 3


def test_histogram_counts_by_bucket_and_action(sqlite_log: AuditLog) -> None:
    t0 = 1_700_000_000_000
    sqlite_log.publish_many(
        [
            {"id": "h:1", "action": "a.up" if i % 3 else "a.down", "timestamp": t0 + i * 1000}
            for i in range(60)
        ]
    )
    h = sqlite_log.histogram(buckets=6, since=t0, until=t0 + 60_000)
    assert h.bucket_ms == 10_000 and len(h.counts) == 6 and h.total() == 60
    assert h.counts[0] == {"a.down": 4, "a.up": 6}
    assert sqlite_log.histogram(buckets=6, since=t0, until=t0 + 60_000, action="a.down").total() == 20


def test_sqlite_url_forms(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with AuditLog("sqlite:///rel/a.db") as log:
        log.publish_audit_log({"id": "m:1", "action": "a.b"})
    assert (tmp_path / "rel" / "a.db").exists()
    with AuditLog(f"sqlite:///{tmp_path}/b.db?synchronous=NORMAL") as log:
        assert log.store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    with pytest.raises(ValueError, match="unknown store URL"):
        AuditLog("mysql://x/y")
    with pytest.raises(ValueError, match="sqlite:///"):
        AuditLog("sqlite://host/a.db")


def test_a_uid_is_unique_per_workspace_and_another_workspace_is_another_event(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    a, b = AuditLog(store, workspace="a"), AuditLog(store, workspace="b")
    b.publish_audit_log({"id": "x:1", "action": "x.y", "uid": "shared-uid"})
    # Explicit times: two publishes in one millisecond would be ordered by uid instead.
    mine = a.publish_audit_log(
        {"id": "m:1", "action": "monitor.down", "uid": "shared-uid", "timestamp": 1_000}
    )
    a.publish_many(
        [
            {"id": "m:2", "action": "a.b", "timestamp": 2_000},
            {"id": "m:2", "action": "a.b", "uid": "shared-uid", "timestamp": 2_000},
        ]
    )
    a.publish_audit_log({"id": "m:3", "action": "a.b", "uid": "shared-uid"})  # a's retry: nothing
    assert [e.id for e in a.list().events] == ["m:2", "m:1"]  # the first copy wins
    assert a.get("shared-uid") == mine
    assert [e.id for e in b.list().events] == ["x:1"]
    b.publish_audit_log({"id": "x:1", "action": "x.y", "uid": "shared-uid"})  # its own retry: fine
    assert len(b.list()) == 1


def test_a_file_from_before_per_workspace_uids_is_migrated(tmp_path: Path) -> None:
    from auditbird.stores.sqlite import MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE auditbird_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for script in MIGRATIONS[:3]:
        conn.executescript(script)
    conn.execute("INSERT INTO auditbird_meta VALUES ('schema_version', '3')")
    conn.execute(
        "INSERT INTO audit_log (uid, workspace, id, action, actor, targets, metadata, timestamp, version) "
        "VALUES ('u1', 'a', 'm:1', 'a.b', '{\"id\":\"x\",\"name\":\"y\"}', '[]', '{\"k\":\"Hello\"}', 5, 1)"
    )
    conn.commit()
    conn.close()
    with SQLiteStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        a, b = AuditLog(store, workspace="a"), AuditLog(store, workspace="b")
        assert a.get("u1") is not None and a.get("u1").actor.id == "x"
        b.publish_audit_log({"id": "m:1", "action": "a.b", "uid": "u1"})
        assert b.get("u1") is not None
        assert [e.uid for e in a.list(actor_id="x").events] == ["u1"]
        assert [e.uid for e in a.list(text="hello").events] == ["u1"]


def test_single_and_batched_appends_write_the_same_target_rows(tmp_path: Path) -> None:
    events = [
        {"id": "m:1", "action": "a.b", "uid": f"u{i}", "timestamp": 1_700_000_000_000 + i, "targets": targets}
        for i, targets in enumerate(
            [
                [{"id": "1", "type": "monitor"}],
                [{"id": "1", "name": "monitor"}, {"id": "2", "type": "page"}],
                [{"id": "7", "type": "monitor"}, {"id": "7", "type": "monitor"}],
                [],
                [{"id": "x:y", "type": "incident", "name": "ignored when type is set"}],
            ]
        )
    ]
    one, many = tmp_path / "one.db", tmp_path / "many.db"
    with AuditLog(f"sqlite:///{one}") as log:
        for event in events:
            log.publish_audit_log(event)
    with AuditLog(f"sqlite:///{many}") as log:
        log.publish_many(events)
    query = "SELECT position, workspace, type, target_id, timestamp, uid FROM audit_target ORDER BY 1, 3, 4"
    rows = sqlite3.connect(one).execute(query).fetchall()
    assert rows == sqlite3.connect(many).execute(query).fetchall()
    assert [(r[0], r[2], r[3]) for r in rows] == [
        (1, "monitor", "1"),
        (2, "monitor", "1"),
        (2, "page", "2"),
        (3, "monitor", "7"),
        (5, "incident", "x:y"),
    ]
