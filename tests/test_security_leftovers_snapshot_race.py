"""A fold that read a subject's values before an erasure must not save them as a snapshot after
it. The hook: the projection's handler runs the erasure (from another log on the same file, as
another process would) after the fold has read the plaintext and before it saves."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from auditbird import AsyncAuditLog, AuditLog
from auditbird.erasure import ERASED
from auditbird.snapshots import Snapshot, SnapshotStore

from .erasure_support import ADA_MAIL, ErasedMidFold
from .erasure_support import invite as _invite
from .erasure_support import invited_registry as _registry

ADA = "Ada Lovelace"


def _snapshots(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT state FROM auditbird_snapshot")]


def _raw(db: Path) -> bytes:
    return b"".join(Path(f"{db}{s}").read_bytes() for s in ("", "-wal") if Path(f"{db}{s}").exists())


def test_a_fold_begun_before_an_erasure_saves_no_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    url = f"sqlite:///{db}"
    reg = _registry()
    with AuditLog(url, workspace="acme", registry=reg) as log:
        log.publish_audit_log(_invite())
        ErasedMidFold.erase_from = url
        try:
            folded = log.snapshot("org:1", ErasedMidFold)  # folds, erases mid-fold, then saves
        finally:
            ErasedMidFold.erase_from = ""
        assert folded.emails == [ADA_MAIL]  # the fold did read the plaintext: what is at stake
        assert _snapshots(db) == []  # ... and did not keep it
        assert ADA_MAIL.encode() not in _raw(db)
        # The next fold began after the erasure: it reads [erased] and may save.
        assert log.snapshot("org:1", ErasedMidFold).emails == [ERASED]
        assert len(_snapshots(db)) == 1 and ADA_MAIL not in _snapshots(db)[0]


def test_an_async_fold_begun_before_an_erasure_saves_no_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    url = f"sqlite:///{db}"

    async def main() -> list[str]:
        async with AsyncAuditLog(url, workspace="acme", registry=_registry()) as log:
            await log.publish_audit_log(_invite())
            ErasedMidFold.erase_from = url
            try:
                return (await log.snapshot("org:1", ErasedMidFold)).emails
            finally:
                ErasedMidFold.erase_from = ""

    assert asyncio.run(main()) == [ADA_MAIL]
    assert _snapshots(db) == [] and ADA_MAIL.encode() not in _raw(db)


def test_a_save_checks_the_generation_in_its_transaction(tmp_path: Path) -> None:
    keeper, other = SnapshotStore(tmp_path / "s.db"), SnapshotStore(tmp_path / "s.db")
    try:
        before = keeper.erasure_generation("acme")
        other.delete_workspace("acme")  # another connection's erasure
        stale = Snapshot("acme", "m:1", "p", "v1", 1, 1, 0, '{"x": 1}', erasure_generation=before)
        assert keeper.save(stale) is False and keeper.load("acme", "m:1", "p", "v1") is None
        fresh = Snapshot("acme", "m:1", "p", "v1", 1, 1, 0, "{}", erasure_generation=before + 1)
        assert keeper.save(fresh) is True and keeper.load("acme", "m:1", "p", "v1") is not None
        # another workspace's erasure fences nothing here
        other.delete_workspace("globex")
        assert keeper.save(fresh) is True
    finally:
        keeper.close()
        other.close()
