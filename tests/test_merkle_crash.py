"""A kill -9 during appends never leaves the tree and the events apart: both are written in
one SQLite transaction, so a crash keeps both or neither."""

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
from auditbird.provable.verify import verify_store

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
        log.publish_many([{"id": "m:x", "action": "a.b", "metadata": {"n": n, "i": i}} for i in range(200)])
    print(n, flush=True)
"""


@pytest.mark.slow
def test_kill_9_mid_append_leaves_tree_and_events_in_agreement(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    for round_ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
        )
        assert proc.stdout is not None
        for _ in range(5 + 7 * round_):  # appends acknowledged before the kill, different each round
            assert proc.stdout.readline()
        time.sleep(0.01 * round_)  # land the kill at a different point of an append
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        conn = sqlite3.connect(db)
        (events,) = conn.execute("SELECT count(*) FROM audit_log").fetchone()
        (leaves,) = conn.execute("SELECT count(*) FROM merkle_leaf").fetchone()
        (size,) = conn.execute("SELECT max(idx) + 1 FROM merkle_leaf WHERE workspace = 'acme'").fetchone()
        (covered,) = conn.execute("SELECT max(position) FROM merkle_leaf").fetchone()
        (last,) = conn.execute("SELECT max(position) FROM audit_log").fetchone()
        conn.close()
        assert events == leaves == size
        assert covered == last
        log = AuditLog(f"sqlite:///{db}", workspace="acme")
        report = verify_store(log)
        log.close()
        assert report.ok, report.message()
        assert report.events == events
