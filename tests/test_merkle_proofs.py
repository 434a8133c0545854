"""Proofs and checkpoints from a real SQLite log, through the library."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from auditbird import AuditLog, NotFound
from auditbird._errors import UnsupportedOperation
from auditbird.provable import ProofError, consistency, prove, tree_root
from auditbird.provable.checkpoint import CheckpointError, open_checkpoint, sign_checkpoint, signer_for
from auditbird.provable.verify import verify_store
from auditbird.stores.merkle import leaf_data, leaf_hash, root_of
from auditbird.testing import MemoryStore


def _publish(log: AuditLog, n: int) -> list[str]:
    return [
        log.publish_audit_log({"id": "m:1", "action": "monitor.down", "metadata": {"i": i}}).uid
        for i in range(n)
    ]


def test_every_event_proves_against_the_root_recomputed_from_its_rows(tmp_path: Path) -> None:
    log = AuditLog(f"sqlite:///{tmp_path / 'a.db'}", workspace="acme")
    uids = _publish(log, 5) + [e.uid for e in log.publish_many([{"id": "s", "action": "a.b"}] * 20)]
    rows = list(log.store.iter_rows("acme"))  # type: ignore[attr-defined]
    assert tree_root(log) == (25, root_of([leaf_hash(leaf_data(r)) for r in rows]))
    for index, uid in enumerate(uids):
        proof = prove(log, uid)
        assert (proof.index, proof.size, proof.leaf_hash) == (index, 25, leaf_hash(leaf_data(rows[index])))
        proof.verify()
    old = prove(log, uids[2], size=3)
    old.verify()
    assert old.root == tree_root(log, 3)[1]
    for first in range(1, 26):
        consistency(log, first).verify()


def test_each_workspace_has_its_own_tree_and_proofs_stay_in_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    acme, other = AuditLog(url, workspace="acme"), AuditLog(url, workspace="other")
    uid = _publish(acme, 3)[0]
    _publish(other, 5)
    assert (tree_root(acme)[0], tree_root(other)[0]) == (3, 5)
    with pytest.raises(NotFound, match="no event"):
        prove(other, uid)


def test_bad_sizes_are_refused_with_the_reason(tmp_path: Path) -> None:
    log = AuditLog(f"sqlite:///{tmp_path / 'a.db'}")
    uid = _publish(log, 4)[3]
    with pytest.raises(ProofError, match="has 4 leaves, not 9"):
        tree_root(log, 9)
    with pytest.raises(ProofError, match="leaf 3 is not in a tree of 2"):
        prove(log, uid, size=2)
    with pytest.raises(ProofError, match="need 0 < old <= new"):
        consistency(log, 5, 4)


def test_a_store_without_a_tree_says_so() -> None:
    with pytest.raises(UnsupportedOperation, match="MemoryStore does not support Merkle proofs"):
        tree_root(AuditLog(MemoryStore()))


def test_with_the_tree_off_appends_are_added_by_the_next_append_that_keeps_it(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    off = AuditLog(f"sqlite:///{db}?tree=off")
    _publish(off, 3)
    assert tree_root(off)[0] == 0
    on = AuditLog(f"sqlite:///{db}")
    _publish(on, 1)
    assert tree_root(on)[0] == 4
    assert verify_store(on).ok


def test_the_signing_key_is_made_once_0600_beside_the_store(tmp_path: Path) -> None:
    log = AuditLog(f"sqlite:///{tmp_path / 'a.db'}", workspace="acme")
    _publish(log, 2)
    text = sign_checkpoint(log)
    key_file = tmp_path / "a.db.checkpoint.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert key_file.read_text().startswith("PRIVATE+KEY+auditbird-a+")
    verifier = signer_for(log).verifier_key()
    assert signer_for(AuditLog(f"sqlite:///{tmp_path / 'a.db'}")).verifier_key() == verifier
    checkpoint = open_checkpoint(text, verifier)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == ("auditbird-a/acme", 2, tree_root(log)[1])


def test_a_checkpoint_under_another_key_or_altered_is_refused(tmp_path: Path) -> None:
    first, second = AuditLog(f"sqlite:///{tmp_path / 'a.db'}"), AuditLog(f"sqlite:///{tmp_path / 'b.db'}")
    _publish(first, 1)
    _publish(second, 1)
    text = sign_checkpoint(first)
    with pytest.raises(CheckpointError, match="no signature by 'auditbird-b'"):
        open_checkpoint(text, signer_for(second).verifier_key())
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(text.replace("\n1\n", "\n2\n"), signer_for(first).verifier_key())
    with pytest.raises(CheckpointError, match="not a verifier key"):
        open_checkpoint(text, "nonsense")


def test_emit_extends_the_tree_in_the_applications_transaction(tmp_path: Path) -> None:
    import sqlite3

    from auditbird import emit

    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    with conn:
        emit(conn, {"id": "order:1", "action": "order.create"})
        emit(conn, {"id": "order:1", "action": "order.paid"})
    with pytest.raises(RuntimeError), conn:  # rolled back: neither the event nor its leaf stays
        emit(conn, {"id": "order:2", "action": "order.create"})
        raise RuntimeError
    conn.close()
    log = AuditLog(f"sqlite:///{db}")
    assert tree_root(log)[0] == 2
    assert verify_store(log).ok


def test_a_proof_with_the_stored_data_fails_once_the_row_is_altered_in_the_file(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "a.db"
    log = AuditLog(f"sqlite:///{db}")
    uid = _publish(log, 5)[2]
    proof = prove(log, uid, with_data=True)
    proof.verify()
    assert proof.leaf_data is not None and leaf_hash(proof.leaf_data) == proof.leaf_hash
    assert proof.to_json()["leaf_data"] == proof.leaf_data.decode()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_log SET metadata = '{\"i\":7}' WHERE uid = ?", (uid,))
    prove(log, uid).verify()  # the tree alone still proves what was recorded
    with pytest.raises(ProofError, match="no longer hashes to the leaf recorded for it"):
        prove(log, uid, with_data=True).verify()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM audit_log WHERE uid = ?", (uid,))
    with pytest.raises(NotFound, match="no event"):
        prove(log, uid, with_data=True)
