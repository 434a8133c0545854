"""The leaf bytes of a stored row, and the writer's per-level groups, held to references we did
not write: the ``rfc8785`` package for the bytes, a rebuild from the leaves for the tree.

``leaf_data`` writes the wire object in one encoder call (the JSON columns spliced in, the
actor's and targets' canonical bytes cached); the single publish hashes it with CPython's own
SHA-256 and keeps the interior levels as groups folded 16 at a time. Each shortcut must give
exactly the bytes and the tree the plain definition gives."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from auditbird import AuditLog
from auditbird.provable import prove, tree_root
from auditbird.provable.verify import verify_store
from auditbird.row import Row, row_to_wire
from auditbird.stores import merkle
from auditbird.stores.merkle import STRIDE, leaf_data, leaf_data_many, leaf_hash, root_of

from .test_merkle_tree import _json_values as _json  # the JSON values the canonical tests draw

_objects = st.dictionaries(st.text(), _json, max_size=4)
_ints = st.integers(min_value=-(2**54), max_value=2**54) | st.integers(min_value=0, max_value=2**41)


def _reference(row: Row) -> bytes:
    """RFC 8785 of the row's wire object, by the ``rfc8785`` package (nobody here wrote it)."""
    return rfc8785.dumps(json.loads(row_to_wire(row)))


@settings(max_examples=400, deadline=None)
@given(
    strings=st.tuples(st.text(), st.text(), st.text(), st.text()),
    actor=_objects,
    targets=st.lists(_objects, max_size=3),
    metadata=st.none() | _objects,
    timestamp=_ints,
    version=_ints,
)
def test_leaf_data_is_what_the_rfc8785_package_writes_for_any_row(
    strings: tuple[str, str, str, str],
    actor: dict[str, object],
    targets: list[dict[str, object]],
    metadata: dict[str, object] | None,
    timestamp: int,
    version: int,
) -> None:
    uid, workspace, id_, action = strings
    row = Row(
        uid,
        workspace,
        id_,
        action,
        json.dumps(actor, ensure_ascii=False),
        json.dumps(targets),
        None if metadata is None else json.dumps(metadata, ensure_ascii=False),
        timestamp,
        version,
    )
    try:
        expected = _reference(row)
    except Exception as exc:  # beyond I-JSON (2**53, a lone surrogate): the same refusal
        with pytest.raises(type(exc)):
            leaf_data(row)
        return
    assert leaf_data(row) == expected
    assert leaf_data(tuple(row)[:9]) == expected  # the writer's raw tuples
    assert leaf_data(row) == expected  # again: the actor's and targets' bytes now cached


@pytest.mark.parametrize(
    "odd",
    [
        None,  # every row plain: one check for the batch
        '{"f": 0.5}',  # a float: the exact tiers
        '{"big": 1234567890123456}',  # 16 digits, within 2**53
        '{"k": "\U0001f600"}',  # beyond the BMP
        '{"\ufb33": 1, "\U0001f600": 2}',  # keys in UTF-16 order
    ],
)
def test_a_batch_s_leaf_bytes_are_each_row_s_own(odd: str | None) -> None:
    rows = [
        Row(
            f"u{i}",
            "w",
            f"s:{i % 3}",
            "a",
            '{"name":"n","id":"7"}',
            "[]",
            json.dumps({"n": i, "z": [i]}),
            i,
            1,
        )
        for i in range(40)
    ]
    if odd is not None:
        rows[17] = rows[17]._replace(metadata=odd)
    assert leaf_data_many(rows) == [_reference(row) for row in rows]
    assert leaf_data_many([]) == []


def test_the_cache_of_repeated_texts_stays_bounded_and_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merkle, "_REPEATED", {})
    monkeypatch.setattr(merkle, "_REPEATED_MAX", 8)
    long_actor = json.dumps({"id": "x" * 600, "name": "n"})  # longer than kept: computed each time
    for i in range(50):
        row = Row("u", "w", "s", "a", json.dumps({"name": f"n{i % 11}", "id": str(i)}), "[]", None, i, 1)
        assert leaf_data(row) == _reference(row)
        big = row._replace(actor=long_actor)
        assert leaf_data(big) == _reference(big)
        assert len(merkle._REPEATED) <= 8
    assert ("w", long_actor) not in merkle._REPEATED
    assert all(workspace == "w" for workspace, _ in merkle._REPEATED)  # one tenant's own entries


def _leaves(db: Path, workspace: str) -> list[bytes]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT uid, workspace, id, action, actor, targets, metadata, timestamp, version "
            "FROM audit_log WHERE workspace = ? ORDER BY position",
            (workspace,),
        ).fetchall()
    return [leaf_hash(_reference(Row(*r))) for r in rows]


@pytest.mark.parametrize("reopen_at", [(1, 15, 16, 17), (255, 256, 257), (31, 32, 33, 270)])
def test_single_publishes_across_group_boundaries_keep_the_tree_of_their_leaves(
    tmp_path: Path, reopen_at: tuple[int, ...]
) -> None:
    """Each reopen loads the groups from the file (at a group's first, last, or a middle
    leaf); the tree must be the rebuild of its leaves at every size, its stored nodes exactly
    one per 16 complete leaves (level 4) and per 256 (level 8)."""
    db = tmp_path / "a.db"
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    uids: list[str] = []
    for n in range(max(reopen_at) + 3):
        if n in reopen_at:
            log.close()
            log = AuditLog(f"sqlite:///{db}", workspace="acme")
        uids.append(
            log.publish_audit_log(
                {
                    "id": f"m:{n % 7}",
                    "action": "monitor.down",
                    "metadata": {"n": n},
                    "actor": {"id": f"u{n % 3}"},
                }
            ).uid
        )
        if n in reopen_at or n % 37 == 0:
            assert tree_root(log) == (n + 1, root_of(_leaves(db, "acme")))
    size = len(uids)
    assert tree_root(log) == (size, root_of(_leaves(db, "acme")))
    with sqlite3.connect(db) as conn:
        counts = dict(conn.execute("SELECT level, count(*) FROM merkle_node GROUP BY level").fetchall())
    expected = {STRIDE: size >> STRIDE, 2 * STRIDE: size >> (2 * STRIDE)}
    assert counts == {level: c for level, c in expected.items() if c}
    for uid in (uids[0], uids[size // 2], uids[-1]):
        prove(log, uid).verify()
    assert verify_store(log).ok
    log.close()


def test_workspaces_interleaved_by_single_publishes_each_keep_their_own_groups(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    logs = {w: AuditLog(f"sqlite:///{db}", workspace=w) for w in ("a", "b")}
    counts = {"a": 0, "b": 0}
    for n in range(90):
        w = "a" if n % 3 else "b"  # a: 60 events, b: 30, never in step
        logs[w].publish_audit_log({"id": "s", "action": "monitor.down", "metadata": {"n": n}})
        counts[w] += 1
    for w, log in logs.items():
        assert tree_root(log) == (counts[w], root_of(_leaves(db, w)))
        assert verify_store(log).ok
        log.close()
