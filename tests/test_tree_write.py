"""The writer's in-memory frontier (stores/sqlite_tree.py, issue 14): a long-lived log keeps
its tree right when anyone else appends to the file between two of its appends (another
connection, another process, ``auditbird.emit``, rows written with ``?tree=off``), and a file
of the previous layout (a ``merkle_tree`` row per workspace) is brought to this one."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from bench.tree_pages import TWO_BTREES

import auditbird
from auditbird import AuditLog
from auditbird._errors import StoreUnavailable
from auditbird.codec import encode
from auditbird.event import Event
from auditbird.provable import consistency, prove, tree_root
from auditbird.provable.verify import verify_store
from auditbird.row import Row
from auditbird.stores.merkle import leaf_data, leaf_hash, root_of
from auditbird.stores.sqlite import SQLiteStore
from auditbird.stores.sqlite_tree import TreeCursor

from .test_group_commit import run_held

COLUMNS = "uid, workspace, id, action, actor, targets, metadata, timestamp, version, position"


def _event(i: int) -> dict[str, object]:
    return {"id": f"m:{i % 7}", "action": "monitor.down", "metadata": {"i": i}}


def _events(n: int, start: int = 0) -> list[dict[str, object]]:
    return [_event(i) for i in range(start, start + n)]


def _expected(db: Path, workspace: str) -> tuple[list[bytes], list[int]]:
    """The leaves every stored row of ``workspace`` must have, in commit order, read from the
    file itself (not through the code under test), and their positions."""
    with sqlite3.connect(db) as conn:
        rows = [
            Row._make(r)
            for r in conn.execute(
                f"SELECT {COLUMNS} FROM audit_log WHERE workspace = ? ORDER BY position",  # noqa: S608
                (workspace,),
            )
        ]
    return [leaf_hash(leaf_data(r)) for r in rows], [int(r.position or 0) for r in rows]


def _stored(db: Path, workspace: str) -> tuple[list[bytes], list[int]]:
    with sqlite3.connect(db) as conn:
        found = conn.execute(
            "SELECT idx, position, hash FROM merkle_leaf WHERE workspace = ? ORDER BY idx", (workspace,)
        ).fetchall()
    assert [i for i, _, _ in found] == list(range(len(found)))  # no idx skipped or repeated
    return [bytes(h) for _, _, h in found], [int(p) for _, p, _ in found]


def _assert_tree_covers_every_row(db: Path, log: AuditLog, workspace: str) -> int:
    leaves, positions = _expected(db, workspace)
    assert _stored(db, workspace) == (leaves, positions)
    assert tree_root(log) == (len(leaves), root_of(leaves))
    report = verify_store(log)
    assert report.ok, report.message()
    return len(leaves)


def test_a_long_lived_log_reloads_its_frontier_when_another_connection_appends(tmp_path: Path) -> None:
    """Two long-lived logs on one file take turns with appends of every size: each turn, the
    other's frontier is stale and must be reloaded from the stored peaks (sizes crossing the
    stored levels 4 and 8 included)."""
    db = tmp_path / "a.db"
    first = AuditLog(f"sqlite:///{db}", workspace="acme")
    second = AuditLog(f"sqlite:///{db}", workspace="acme")
    other = AuditLog(f"sqlite:///{db}", workspace="other")  # another workspace's leaves between
    n = 0
    for turn, size in enumerate([1, 1, 3, 1, 14, 1, 17, 2, 200, 1, 33, 1, 5]):
        log = (first, second)[turn % 2]
        if size == 1:
            log.publish_audit_log(_event(n))
        else:
            log.publish_many(_events(size, n))
        n += size
        if turn % 3 == 0:
            other.publish_audit_log(_event(n))
        assert _assert_tree_covers_every_row(db, log, "acme") == n
    assert _assert_tree_covers_every_row(db, other, "other") == 5
    for log in (first, second, other):
        log.close()


WRITER = """
import sys
from auditbird import AuditLog
log = AuditLog("sqlite:///" + sys.argv[1], workspace="acme")
for i in range(int(sys.argv[2])):
    log.publish_audit_log({"id": "m:p", "action": "monitor.up", "metadata": {"p": i}})
log.publish_many([{"id": "m:p", "action": "monitor.up", "metadata": {"q": i}} for i in range(40)])
log.close()
"""


def test_another_process_appending_between_two_appends_of_a_long_lived_log(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    log.publish_many(_events(20))
    log.publish_audit_log(_event(20))
    for count in (1, 9):
        subprocess.run([sys.executable, "-c", WRITER, str(db), str(count)], check=True, env=os.environ.copy())
        uid = log.publish_audit_log(_event(100 + count)).uid
        prove(log, uid).verify()
    assert _assert_tree_covers_every_row(db, log, "acme") == 21 + (1 + 40 + 1) + (9 + 40 + 1)
    consistency(log, 21).verify()
    log.close()


def test_rows_written_with_the_tree_off_are_caught_up_in_commit_order(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    untreed = AuditLog(f"sqlite:///{db}?tree=off", workspace="acme")
    log.publish_many(_events(5))
    untreed.publish_audit_log(_event(5))
    untreed.publish_many(_events(3, 6))
    assert tree_root(log)[0] == 5  # not covered yet
    log.publish_audit_log(_event(9))  # the writer's own row does not follow the last leaf
    assert _assert_tree_covers_every_row(db, log, "acme") == 10
    untreed.publish_many(_events(4, 10))
    log.publish_many(_events(3, 14))
    assert _assert_tree_covers_every_row(db, log, "acme") == 17
    log.close()
    untreed.close()


def test_emit_and_publish_interleaved_keep_one_tree(tmp_path: Path) -> None:
    """``auditbird.emit`` extends the tree in the application's transaction (no cursor), the
    long-lived log between; a rolled-back emit leaves neither an event nor a leaf."""
    db = tmp_path / "a.db"
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    log.publish_audit_log(_event(0))
    app = sqlite3.connect(db, isolation_level=None)
    app.execute("BEGIN IMMEDIATE")
    auditbird.emit(app, _event(1), workspace="acme")
    auditbird.emit(app, _event(2), workspace="acme")
    app.execute("COMMIT")
    log.publish_many(_events(3, 3))
    app.execute("BEGIN IMMEDIATE")
    auditbird.emit(app, _event(6), workspace="acme")
    app.execute("ROLLBACK")
    log.publish_audit_log(_event(7))
    app.execute("BEGIN IMMEDIATE")
    auditbird.emit(app, _event(8), workspace="acme")
    app.execute("COMMIT")
    log.publish_audit_log(_event(9))
    assert _assert_tree_covers_every_row(db, log, "acme") == 9  # 1 + 2 + 3 + 1 + 1 + 1
    app.close()
    log.close()


def _previous_layout(db: Path) -> None:
    """What the previous release wrote besides: a ``merkle_tree`` row per workspace (its size and
    frontier, rewritten by every commit)."""
    from auditbird.stores.merkle import append_leaf

    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS merkle_tree (workspace TEXT PRIMARY KEY, size INTEGER NOT NULL, "
            "frontier BLOB NOT NULL)"
        )
        for (workspace,) in conn.execute("SELECT DISTINCT workspace FROM merkle_leaf").fetchall():
            frontier: list[bytes] = []
            hashes = conn.execute(
                "SELECT hash FROM merkle_leaf WHERE workspace = ? ORDER BY idx", (workspace,)
            ).fetchall()
            for i, (h,) in enumerate(hashes):
                append_leaf(frontier, i, bytes(h))
            conn.execute(
                "INSERT OR REPLACE INTO merkle_tree (workspace, size, frontier) VALUES (?, ?, ?)",
                (workspace, len(hashes), b"".join(frontier)),
            )


def test_a_file_of_the_previous_layout_is_upgraded_and_keeps_its_tree(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    uids = [e.uid for e in log.publish_many(_events(37))]
    before = tree_root(log)
    log.close()
    _previous_layout(db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT size FROM merkle_tree").fetchall() == [(37,)]

    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    with sqlite3.connect(db) as conn:  # emptied on open: never read again, nor left stale
        assert conn.execute("SELECT count(*) FROM merkle_tree").fetchone() == (0,)
    assert tree_root(log) == before
    prove(log, uids[5]).verify()
    log.publish_audit_log(_event(37))
    log.publish_many(_events(30, 38))
    assert _assert_tree_covers_every_row(db, log, "acme") == 68
    consistency(log, 37).verify()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM merkle_tree").fetchone() == (0,)
    log.close()


def test_a_damaged_frontier_stops_the_append_with_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    log.publish_many(_events(21))  # peaks: 16 leaves (stored on level 4), 4, 1
    log.close()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM merkle_node WHERE level = 4")
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    with pytest.raises(StoreUnavailable, match="lacks stored nodes under its frontier"):
        log.publish_audit_log(_event(21))
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (21,)
        assert conn.execute("SELECT count(*) FROM merkle_leaf").fetchone() == (21,)
    log.close()


def test_a_tree_emptied_under_a_long_lived_log_is_rebuilt_from_the_rows_by_its_next_append(
    tmp_path: Path,
) -> None:
    """The writer's own rows follow the last leaf it knows, but that leaf is gone (the tables
    were emptied by hand): the first leaf's insert checks it, and the tree is rebuilt."""
    db = tmp_path / "a.db"
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    log.publish_many(_events(10))
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM merkle_leaf")
        conn.execute("DELETE FROM merkle_node")
    log.publish_audit_log(_event(10))
    assert _assert_tree_covers_every_row(db, log, "acme") == 11
    log.close()


def test_a_group_commit_whose_appends_go_in_one_by_one_extends_the_tree_over_what_committed(
    tmp_path: Path,
) -> None:
    """A stale stream revision makes the group's appends go in one savepoint each; one append's
    third row is refused by the database after two went in: the tree holds exactly the rows
    that committed, in commit order."""
    db = tmp_path / "a.db"
    store = SQLiteStore(db)
    log = AuditLog(store, workspace="acme")
    log.publish_many(_events(3))
    bad = [
        encode(Event.model_validate({"id": f"b:{i}", "action": "a.b", "workspace": "acme"})) for i in range(3)
    ]
    bad[2] = bad[2]._replace(id=None)  # type: ignore[arg-type]
    calls = [
        lambda: log.publish_audit_log(_event(3)),
        lambda: log.publish_many([{"id": "s:1", "action": "x.y"}] * 2, expected_revision=5),  # conflicts
        lambda: log.publish_many(_events(20, 4)),
        lambda: log.publish_audit_log({"id": "s:1", "action": "x.y"}, expected_revision=0),
        lambda: store.append(bad),  # last: nothing after it shows that its rows are gone
    ]
    results = run_held(store, calls)
    kinds = ["Event", "ConflictError", "list", "Event", "IntegrityError"]
    assert [type(r).__name__ for r in results] == kinds
    assert _assert_tree_covers_every_row(db, log, "acme") == 3 + 1 + 20 + 1
    calls = [lambda: log.publish_audit_log(_event(30)), lambda: log.publish_many(_events(16, 31))]
    assert [type(r).__name__ for r in run_held(store, calls)] == ["Event", "list"]  # one batch
    assert _assert_tree_covers_every_row(db, log, "acme") == 25 + 1 + 16
    log.close()


def test_the_writer_keeps_the_frontiers_of_a_bounded_number_of_workspaces(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    store = SQLiteStore(db)
    store._tree_cursor = TreeCursor(limit=3)  # the default keeps 4,096
    logs = [AuditLog(store, workspace=f"w{i}") for i in range(5)]
    for round_ in range(3):
        for i, log in enumerate(logs):
            log.publish_audit_log(_event(round_ * 10 + i))
        assert list(store._tree_cursor.trees) == ["w2", "w3", "w4"]  # the last three appended to
    for i, log in enumerate(logs):
        assert _assert_tree_covers_every_row(db, log, f"w{i}") == 3
    store.close()


def test_a_long_lived_logs_publish_reads_no_leaf_and_stages_nothing(tmp_path: Path) -> None:
    """The common case's statements, as SQLite ran them: the event, the file's data_version
    (nobody else wrote), the leaf's plain insert. No read of ``merkle_leaf`` (a check inside
    the leaf's INSERT made SQLite stage the row in a temporary table, ~25 us a publish)."""
    db = tmp_path / "a.db"
    store = SQLiteStore(db)
    with AuditLog(store, workspace="acme") as log:
        log.publish_many(_events(40))
        log.publish_audit_log(_event(40))  # the frontier is now in the writer's memory
        statements: list[str] = []
        store._conn.set_trace_callback(statements.append)
        log.publish_audit_log(_event(41))
        store._conn.set_trace_callback(None)
        ran = [s for s in statements if not s.startswith("--")]  # not a trigger's own steps
        tree = [s for s in ran if "merkle_" in s]
        assert len(tree) == 1, tree
        assert tree[0].startswith(
            "INSERT INTO merkle_leaf (position, workspace, idx, hash) VALUES (42, 'acme', 41, "
        )
        assert [s for s in ran if "data_version" in s] == ["PRAGMA data_version"]
        with sqlite3.connect(db) as reader:
            reader.text_factory = bytes  # the plan's operands hold the hash's bytes
            plan = [bytes(r[1]).decode() for r in reader.execute("EXPLAIN " + tree[0])]
        assert "OpenWrite" in plan and "OpenEphemeral" not in plan
        assert _assert_tree_covers_every_row(db, log, "acme") == 42


def _to_the_rowid_layout(db: Path) -> None:
    """What 0.2.0 development builds wrote until 2026-12-02: merkle_leaf keyed by position,
    with a unique (workspace, idx) index (two B-trees, two pages a commit)."""
    with sqlite3.connect(db) as conn:
        conn.executescript(TWO_BTREES)


def test_a_file_of_the_two_btree_layout_is_brought_to_one_and_keeps_its_tree(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    with (
        AuditLog(f"sqlite:///{db}", workspace="acme") as log,
        AuditLog(f"sqlite:///{db}", workspace="other") as other,
    ):
        for i in range(30):
            (log if i % 3 else other).publish_audit_log(_event(i))
        old_uid = log.list(limit=1).events[0].uid
        before = tree_root(log)
    _to_the_rowid_layout(db)
    with sqlite3.connect(db) as conn:
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'merkle_leaf'").fetchone()
        assert "WITHOUT ROWID" not in sql
    with AuditLog(f"sqlite:///{db}", workspace="acme") as log:
        assert tree_root(log) == before
        prove(log, old_uid).verify()
        log.publish_many(_events(20, 30))
        assert _assert_tree_covers_every_row(db, log, "acme") == 20 + 20
        consistency(log, before[0]).verify()
    with sqlite3.connect(db) as conn:
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'merkle_leaf'").fetchone()
        assert "WITHOUT ROWID" in sql.upper()
        assert (
            conn.execute("SELECT name FROM sqlite_master WHERE name = 'merkle_leaf_idx'").fetchone() is None
        )


def test_every_event_of_interleaved_workspaces_finds_its_leaf(tmp_path: Path) -> None:
    """Store position -> leaf goes through a search of the workspace's leaves (one B-tree keyed
    by (workspace, idx)): with three workspaces interleaved unevenly, rows written with the
    tree off between, every uid's index is its rank in its workspace and its proof verifies,
    and the relay's leaves of a span of positions are exactly the rows' own."""
    import random

    from auditbird.stores.sqlite_tree import leaves_between

    db = tmp_path / "a.db"
    rng = random.Random(7)
    logs = {w: AuditLog(f"sqlite:///{db}", workspace=w) for w in ("a", "b", "c")}
    untreed = AuditLog(f"sqlite:///{db}?tree=off", workspace="b")
    for i in range(400):
        w = rng.choice("aaaaabbc")
        if i % 50 == 25:
            untreed.publish_audit_log(_event(i))
        elif i % 7 == 0:
            logs[w].publish_many(_events(rng.randint(2, 9), i))
        else:
            logs[w].publish_audit_log(_event(i))
    logs["a"].publish_audit_log(_event(999))  # covers the last rows written with the tree off
    store = logs["a"].store
    for w, log in logs.items():
        expected, positions = _expected(db, w)
        uids = [e.uid for e in reversed(list(log.list(limit=1000).events))]
        assert len(uids) == len(expected)
        for rank in range(0, len(uids), 3):
            assert store.tree_index(w, uids[rank]) == rank
        for uid in uids[-5:] + uids[:5]:
            prove(log, uid).verify()
    with sqlite3.connect(db) as conn:
        for lo, hi in ((1, 40), (37, 38), (100, 260), (300, 10_000)):
            rows = conn.execute(
                "SELECT position, workspace FROM audit_log WHERE position BETWEEN ? AND ?", (lo, hi)
            ).fetchall()
            got = {(p, w): i for p, w, i, _ in leaves_between(conn, lo, hi)}
            for p, w in rows:
                _, positions = _expected(db, w)
                assert got[(p, w)] == positions.index(p)
            assert len(got) == len(rows)
    for log in (*logs.values(), untreed):
        log.close()
