"""`auditbird retention set/apply` and `auditbird verify` after it, as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from auditbird import AuditLog
from auditbird.event import now_ms

DAY = 86_400_000
pytestmark = pytest.mark.slow  # a CLI subprocess per step: ~1 s each


def _cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditbird", "--store", f"sqlite:///{db}", "-w", "acme", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


def test_set_dry_run_apply_then_verify_an_older_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    now = now_ms()
    for i in range(4):
        log.publish_audit_log({"id": "u:1", "action": "user.login", "timestamp": now - (500 - i) * DAY})
    for i in range(3):
        log.publish_audit_log({"id": "m:1", "action": "monitor.down", "metadata": {"n": i}})
    log.close()
    cp, key = tmp_path / "cp.txt", tmp_path / "key.txt"
    cp.write_text(_cli(db, "checkpoint").stdout)
    key.write_text(_cli(db, "checkpoint", "--public-key").stdout)

    no_policy = _cli(db, "retention", "apply")
    assert no_policy.returncode == 2 and "has no retention policy" in no_policy.stderr
    bad = _cli(db, "retention", "set", "a year")
    assert bad.returncode == 2 and "retention period 'a year'" in bad.stderr
    assert _cli(db, "retention", "set", "365d").returncode == 0
    assert _cli(db, "retention", "show").stdout == "'acme'\t365d\n"

    dry = _cli(db, "retention", "apply", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    [planned] = json.loads(dry.stdout)
    assert (planned["removed"], planned["dry_run"], planned["event_uids"]) == (4, True, [])
    assert (planned["oldest"], planned["newest"]) == (now - 500 * DAY, now - 497 * DAY)
    assert _cli(db, "query", "--format", "ndjson", "--limit", "100").stdout.count("user.login") == 4

    done = _cli(db, "retention", "apply")
    assert done.returncode == 0, done.stderr
    assert "removed 4 events older than" in done.stdout and "oldest " in done.stdout
    assert "user.login" not in _cli(db, "query", "--format", "ndjson", "--limit", "100").stdout

    verified = _cli(db, "verify", "--checkpoint", str(cp), "--public-key", str(key))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert (
        "verified 7 events up to checkpoint 7; 4 of them (#1-#4) expired by retention policy"
        in verified.stdout
    )
    assert "extends it (consistency proof verified)" in verified.stdout
    # The run's event is past that checkpoint: not yet signed, and verify says so.
    assert "(a run recorded after the checkpoint: sign a new one to cover it)" in verified.stdout
    cp.write_text(_cli(db, "checkpoint").stdout)
    signed = _cli(db, "verify", "--checkpoint", str(cp), "--public-key", str(key))
    assert signed.returncode == 0, signed.stdout + signed.stderr
    assert "expired by retention policy" in signed.stdout and "sign a new one" not in signed.stdout
