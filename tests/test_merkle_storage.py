"""How the SQLite store keeps its tree: the leaf hashes and every STRIDE-th level only, every
other node folded from what is stored, and files of the first layout brought to this one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from auditbird import AuditLog
from auditbird.provable import consistency, prove, tree_root
from auditbird.provable.verify import verify_store
from auditbird.stores.merkle import STRIDE, append_leaf, leaf_data, leaf_hash, root_of


def _events(n: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {"id": f"m:{i % 7}", "action": "monitor.down", "metadata": {"i": i}} for i in range(start, start + n)
    ]


def _leaves(log: AuditLog) -> list[bytes]:
    return [leaf_hash(leaf_data(r)) for r in log.store.iter_rows(log.workspace)]  # type: ignore[attr-defined]


def test_a_300_leaf_tree_stores_the_leaves_and_levels_4_and_8_and_proves_every_event(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    uids = [log.publish_audit_log(e).uid for e in _events(21)]  # single appends, then batches
    for start in range(21, 300, 93):
        uids += [e.uid for e in log.publish_many(_events(min(93, 300 - start), start))]
    leaves = _leaves(log)
    assert len(leaves) == 300
    assert tree_root(log) == (300, root_of(leaves))
    for index, uid in enumerate(uids):
        proof = prove(log, uid)
        assert (proof.index, proof.leaf_hash) == (index, leaves[index])
        proof.verify()
    for size in (1, 2, 3, 15, 16, 17, 31, 255, 256, 257, 299):
        assert tree_root(log, size)[1] == root_of(leaves[:size])
        consistency(log, size).verify()
        prove(log, uids[size - 1], size=size).verify()
    with sqlite3.connect(db) as conn:
        levels = dict(conn.execute("SELECT level, count(*) FROM merkle_node GROUP BY level").fetchall())
        (hashes,) = conn.execute("SELECT count(hash) FROM merkle_leaf WHERE workspace = 'acme'").fetchone()
    assert STRIDE == 4
    assert levels == {4: 300 // 16, 8: 300 // 256}  # 19 node rows for 300 leaves
    assert hashes == 300
    log.close()


def test_a_missing_stored_hash_is_reported_as_damage_not_folded_around(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log = AuditLog(f"sqlite:///{db}")
    uid = log.publish_many(_events(40))[0].uid
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM merkle_leaf WHERE idx = 37")
    with pytest.raises(ValueError, match="lacks stored nodes"):
        prove(log, uid)
    log.close()


def _downgrade_to_the_first_layout(db: Path, workspace: str) -> None:
    """What auditbird wrote before the STRIDE layout: every complete subtree in merkle_node
    (the leaf hashes as level 0), merkle_leaf without hashes, and a cursor table."""
    with sqlite3.connect(db) as conn:
        hashes = [bytes(h) for (h,) in conn.execute("SELECT hash FROM merkle_leaf ORDER BY idx")]
        frontier: list[bytes] = []
        nodes = [
            (workspace, level, idx, digest)
            for i, leaf in enumerate(hashes)
            for level, idx, digest in append_leaf(frontier, i, leaf)
        ]
        (last,) = conn.execute("SELECT max(position) FROM merkle_leaf").fetchone()
        conn.execute("DELETE FROM merkle_node")
        conn.executemany("INSERT INTO merkle_node (workspace, level, idx, hash) VALUES (?, ?, ?, ?)", nodes)
        conn.execute("ALTER TABLE merkle_leaf DROP COLUMN hash")
        conn.execute(
            "CREATE TABLE merkle_cursor (one INTEGER PRIMARY KEY CHECK (one = 1), position INTEGER NOT NULL)"
        )
        conn.execute("INSERT INTO merkle_cursor (one, position) VALUES (1, ?)", (last,))


def test_a_file_of_the_first_layout_is_upgraded_on_open_and_keeps_its_proofs(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    uids = [e.uid for e in log.publish_many(_events(37))]
    before = tree_root(log)
    log.close()
    _downgrade_to_the_first_layout(db, "acme")

    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    assert tree_root(log) == before
    prove(log, uids[5]).verify()
    uids.append(log.publish_audit_log(_events(1, 37)[0]).uid)
    assert tree_root(log) == (38, root_of(_leaves(log)))
    consistency(log, 37).verify()
    assert verify_store(log).ok
    with sqlite3.connect(db) as conn:
        levels = {level for (level,) in conn.execute("SELECT DISTINCT level FROM merkle_node")}
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert levels == {4}
    assert "merkle_cursor" not in tables
    log.close()


def test_leaves_of_rows_with_escapes_and_non_ascii_in_every_column_match_their_export(tmp_path: Path) -> None:
    """The append path writes each row's wire object itself (keys in RFC 8785 order): held to
    ``leaf_data(row)`` for strings that need escapes, non-ASCII and characters beyond the BMP."""
    odd = 'q"b\\s/\t\x01é☃\U0001f600'
    log = AuditLog(f"sqlite:///{tmp_path / 'a.db'}", workspace="acme:eu/1")
    log.publish_many(
        [
            {
                "id": f"m:{odd}:{i}",
                "action": "monitor.down",
                "actor": {"id": odd, "name": odd, "type": "user"},
                "targets": [{"id": odd, "type": "monitor"}],
                "metadata": {odd: i, "f": 0.5 * i, "big": 10**15 + i, "nested": {"z": [odd], "a": None}},
            }
            for i in range(20)
        ]
    )
    log.publish_audit_log({"id": odd, "action": "monitor.down"})
    leaves = _leaves(log)
    assert len(leaves) == 21
    assert tree_root(log) == (21, root_of(leaves))
    assert verify_store(log).ok
    log.close()
