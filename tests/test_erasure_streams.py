"""Log streams and erasure: receivers get personal values readable (a SIEM cannot read
ciphertext), ``[erased]`` once the subject is erased; what the streamer keeps stays sealed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from auditbird import AuditLog
from auditbird.erasure import erase_subject

from .live_server import EXE

ACTOR = {"id": "42", "name": "Grace Hopper", "type": "user"}


def streams(store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "--store", store, "--workspace", "acme", "streams", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def delivered(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_streams_deliver_names_readable_then_erased(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditLog(store, workspace="acme") as log:
        uid = log.publish_audit_log({"id": "m:1", "action": "monitor.down", "actor": ACTOR}).uid
    # The stored row holds ciphertext, never the name.
    assert b"Grace Hopper" not in (tmp_path / "audit.db").read_bytes()

    before = tmp_path / "before.ndjson"
    assert streams(store, "add", "before", "--ndjson", str(before)).returncode == 0
    ran = streams(store, "run")
    assert ran.returncode == 0, ran.stderr
    [event] = delivered(before)
    assert event["uid"] == uid
    assert event["actor"]["name"] == "Grace Hopper"  # type: ignore[index]

    with AuditLog(store, workspace="acme") as log:
        erase_subject(log, "user:42")
    after = tmp_path / "after.ndjson"
    assert streams(store, "add", "after", "--ndjson", str(after)).returncode == 0
    ran = streams(store, "run", "after")
    assert ran.returncode == 0, ran.stderr
    events = delivered(after)
    first = next(e for e in events if e["uid"] == uid)
    assert first["actor"]["name"] == "[erased]"  # type: ignore[index]
    assert all("Grace Hopper" not in json.dumps(e) for e in events)
    # Nothing the streamer keeps beside the store holds the name in the clear.
    for side in tmp_path.glob("audit.*"):
        assert b"Grace Hopper" not in side.read_bytes(), side
