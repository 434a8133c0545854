"""A process killed (-9) while groups of publishes are committing loses only what it had not
acknowledged: every publish that returned is in the file, and the file is consistent."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from auditbird import AuditLog

SRC = str(Path(__file__).resolve().parents[1] / "src")

PUBLISHERS = """
import sys, threading
from auditbird import AuditLog

log = AuditLog(f"sqlite:///{sys.argv[1]}")
say = threading.Lock()

def publisher(t):
    i = 0
    while True:
        event = log.publish_audit_log({"id": f"m:{t}", "action": "monitor.down", "metadata": {"i": i}})
        with say:  # printed only after publish returned: an acknowledgement
            print(event.uid, flush=True)
        i += 1

for t in range(12):
    threading.Thread(target=publisher, args=(t,), daemon=True).start()
threading.Event().wait()
"""


def test_kill_9_mid_group_loses_only_unacknowledged_publishes(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PUBLISHERS), str(path)],
        env={**os.environ, "PYTHONPATH": SRC},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    acked: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            acked.append(line.strip())
            if len(acked) >= 400:
                break
        assert len(acked) >= 400, child.stderr.read() if child.stderr else ""
    finally:
        child.send_signal(signal.SIGKILL)  # mid-commit: twelve publishers were busy
        child.wait(30)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored = {uid for (uid,) in conn.execute("SELECT uid FROM audit_log")}
    count, first, last = conn.execute(
        "SELECT count(*), min(position), max(position) FROM audit_log"
    ).fetchone()
    conn.close()
    assert set(acked) <= stored  # every acknowledged publish survived the kill
    assert (first, last) == (1, count)  # gap-free: no half-written group
    assert len(stored) == count  # no uid twice
    with AuditLog(f"sqlite:///{path}") as log:  # the file still takes writes
        log.publish_audit_log({"id": "after", "action": "monitor.up"})
        assert log.revision("after") == 1
