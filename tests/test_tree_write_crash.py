"""kill -9 of a writer mid-append while another long-lived log keeps its frontier in memory
(issue 14): the survivor sees the last leaf change, reloads, and the tree still covers every
committed row, in commit order."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from auditbird import AuditLog
from auditbird.provable import prove, tree_root
from auditbird.provable.verify import verify_store
from auditbird.row import Row
from auditbird.stores.merkle import leaf_data, leaf_hash, root_of

WRITER = """
import sys
from auditbird import AuditLog
log = AuditLog("sqlite:///" + sys.argv[1], workspace="acme")
n = 0
while True:
    n += 1
    if n % 3:
        log.publish_audit_log({"id": f"m:{n % 7}", "action": "monitor.down", "metadata": {"n": n}})
    else:
        log.publish_many([{"id": "m:x", "action": "a.b", "metadata": {"n": n, "i": i}} for i in range(300)])
    print(n, flush=True)
"""
COLUMNS = "uid, workspace, id, action, actor, targets, metadata, timestamp, version, position"


def _leaves_of_the_rows(db: Path) -> list[bytes]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f"SELECT {COLUMNS} FROM audit_log ORDER BY position").fetchall()  # noqa: S608
    return [leaf_hash(leaf_data(Row._make(r))) for r in rows]


@pytest.mark.slow
def test_kill_9_of_one_writer_while_a_long_lived_log_appends_between(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    survivor = AuditLog(f"sqlite:///{db}", workspace="acme")  # open throughout: its cursor goes stale
    survivor.publish_many([{"id": "s", "action": "a.b", "metadata": {"i": i}} for i in range(20)])
    for round_ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
        )
        assert proc.stdout is not None
        for _ in range(3 + 5 * round_):  # appends acknowledged before the kill, different each round
            assert proc.stdout.readline()
        time.sleep(0.01 * round_)  # land the kill at a different point of an append
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        uid = survivor.publish_audit_log({"id": "s", "action": "a.b", "metadata": {"round": round_}}).uid
        leaves = _leaves_of_the_rows(db)
        assert tree_root(survivor) == (len(leaves), root_of(leaves))
        proof = prove(survivor, uid)
        assert (proof.index, proof.leaf_hash) == (len(leaves) - 1, leaves[-1])
        proof.verify()
        report = verify_store(survivor)
        assert report.ok, report.message()
        with sqlite3.connect(db) as conn:
            covered = conn.execute("SELECT max(position), count(*) FROM merkle_leaf").fetchone()
            stored = conn.execute("SELECT max(position), count(*) FROM audit_log").fetchone()
        assert covered == stored
    survivor.close()
