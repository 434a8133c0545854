"""``AuditLog.prove``, ``.consistency`` and ``.checkpoint``: the same answers as the functions in
:mod:`auditbird.provable`, and proofs that verify against a signed checkpoint's root."""

from __future__ import annotations

from pathlib import Path

from auditbird import AuditLog
from auditbird.provable import consistency, prove
from auditbird.provable.checkpoint import open_checkpoint, signer_for


def test_log_methods_prove_and_sign(tmp_path: Path) -> None:
    with AuditLog(f"sqlite:///{tmp_path / 'audit.db'}", workspace="acme") as log:
        events = log.publish_many([{"id": f"m:{i}", "action": "monitor.down"} for i in range(9)])
        uids = [e.uid for e in events]
        signed = log.checkpoint()
        body = open_checkpoint(signed, signer_for(log).verifier_key())
        assert body.size == 9
        proof = log.prove(uids[4])
        assert proof == prove(log, uids[4])
        assert proof.index == 4 and proof.size == 9
        assert proof.root == body.root
        old = log.consistency(5)
        assert old == consistency(log, 5)
        assert (old.old, old.new) == (5, 9)
        old.verify()
        proof.verify()
