"""``AsyncAuditLog.prove / consistency / checkpoint``: the same proofs as the library's, awaited."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from auditbird import AsyncAuditLog, AuditLog
from auditbird._errors import NotFound, UnsupportedOperation
from auditbird.provable import ProofError, prove, tree_root
from auditbird.provable.checkpoint import open_checkpoint, signer_for
from auditbird.testing import MemoryStore


def test_the_async_log_proves_checks_consistency_and_signs_in_its_workspace(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"

    async def main() -> None:
        async with (
            AsyncAuditLog(url, workspace="acme") as log,
            AsyncAuditLog(url, workspace="other") as other,
        ):
            events = await log.publish_many(
                [{"id": "m:1", "action": "monitor.down", "metadata": {"i": i}} for i in range(9)]
            )
            await other.publish_audit_log({"id": "m:1", "action": "monitor.down"})
            proofs = await asyncio.gather(*(log.prove(e.uid) for e in events))
            for index, proof in enumerate(proofs):
                proof.verify()
                assert (proof.workspace, proof.index, proof.size) == ("acme", index, 9)
            older = await log.prove(events[2].uid, size=5)
            older.verify()
            assert older.size == 5
            (await log.consistency(4)).verify()
            (await log.consistency(3, 7)).verify()
            with pytest.raises(NotFound, match="no event"):
                await other.prove(events[0].uid)
            with pytest.raises(ProofError, match="need 0 < old <= new"):
                await log.consistency(8, 2)
            text = await log.checkpoint()
            assert (await other.checkpoint()) != text

        sync = AuditLog(url, workspace="acme")
        opened = open_checkpoint(text, signer_for(sync).verifier_key())
        assert (opened.size, opened.root) == tree_root(sync)
        assert opened.origin.endswith("/acme")
        assert proofs[4] == prove(sync, events[4].uid)
        sync.close()

    asyncio.run(main())


def test_an_async_log_over_a_store_without_a_tree_says_so() -> None:
    async def main() -> None:
        async with AsyncAuditLog(MemoryStore()) as log:
            with pytest.raises(UnsupportedOperation, match="Merkle proofs"):
                await log.prove("x")

    asyncio.run(main())
