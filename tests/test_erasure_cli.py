"""``auditbird erase`` as a user runs it (real subprocesses over a SQLite file): the subject's
fields read as [erased] in `query` (NDJSON and CSV), the export for offline verification holds
only ciphertext, and `auditbird verify` still passes, offline and against the store, also
against a checkpoint signed before the erasure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ADA, ADA_MAIL, BOB = "Ada Lovelace", "ada@example.org", "Bob Babbage"

ACTIONS = """
from typing import Annotated
from pydantic import BaseModel
from auditbird import Personal, action

@action("user.invited")
class UserInvited(BaseModel):
    email: Annotated[str, Personal()]
"""


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    env.pop("AUDITBIRD_URL", None)
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    cmd = [sys.executable, "-m", "auditbird", "--store", store, "--actions", "erasure_actions", "-w", "acme"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_erase_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "erasure_actions.py").write_text(ACTIONS)
    events = [
        {
            "id": "org:1",
            "action": "user.invited",
            "actor": {"id": "42", "name": ADA},
            "metadata": {"email": ADA_MAIL},
        },
        {
            "id": "org:1",
            "action": "user.invited",
            "actor": {"id": "43", "name": BOB},
            "metadata": {"email": "b@x.org"},
        },
    ]
    for event in events:
        _ok(_cli(tmp_path, "publish", json.dumps(event)))
    before = _ok(_cli(tmp_path, "checkpoint"))
    (tmp_path / "before.txt").write_text(before)
    assert ADA in _ok(_cli(tmp_path, "query", "--format", "ndjson"))

    out = _ok(_cli(tmp_path, "erase", "--subject", "user:42"))
    assert "erased user:42 in workspace 'acme'" in out and "1 key(s) destroyed" in out

    again = _cli(tmp_path, "erase", "--subject", "user:42")
    assert again.returncode == 2 and "no personal data of 'user:42'" in again.stderr
    bad = _cli(tmp_path, "erase", "--subject", "42")
    assert bad.returncode == 2 and "kind:id" in bad.stderr

    for fmt in ("ndjson", "csv", "json", "table"):
        text = _ok(_cli(tmp_path, "query", "--format", fmt, "--limit", "100"))
        assert ADA not in text and ADA_MAIL not in text, fmt
        assert BOB in text, fmt
    lines = [json.loads(line) for line in _ok(_cli(tmp_path, "query", "--format", "ndjson")).splitlines()]
    erased = [e for e in lines if e["action"] == "audit_log.subject_erased"]
    assert [e["metadata"] for e in erased] == [{"subject": "user:42", "keys_destroyed": 1}]
    ada = [e for e in lines if e["actor"].get("id") == "42"]
    assert ada[0]["actor"]["name"] == "[erased]" and ada[0]["metadata"]["email"] == "[erased]"

    checkpoint = _ok(_cli(tmp_path, "checkpoint", "--export", str(tmp_path / "events.ndjson")))
    (tmp_path / "cp.txt").write_text(checkpoint)
    (tmp_path / "key.txt").write_text(_ok(_cli(tmp_path, "checkpoint", "--public-key")))
    exported = (tmp_path / "events.ndjson").read_text()
    assert ADA not in exported and ADA_MAIL not in exported and "$erasable:v1:" in exported
    offline = _cli(
        tmp_path,
        "verify",
        "--export",
        str(tmp_path / "events.ndjson"),
        "--checkpoint",
        str(tmp_path / "cp.txt"),
        "--public-key",
        str(tmp_path / "key.txt"),
    )
    assert "verified 3 events" in _ok(offline)
    assert "verified 3 events" in _ok(_cli(tmp_path, "verify"))
    # History signed before the erasure still holds: the erasure rewrote nothing.
    assert "verified 2 events up to checkpoint 2" in _ok(
        _cli(tmp_path, "verify", "--checkpoint", "before.txt")
    )
    for name in ("audit.db", "audit.db-wal"):
        path = tmp_path / name
        if path.exists():
            assert ADA.encode() not in path.read_bytes() and ADA_MAIL.encode() not in path.read_bytes()


def test_erase_forgets_the_services_idempotency_records_of_the_workspace(tmp_path: Path) -> None:
    """The service's keys beside the store keep answers as published: the CLI's erasure
    deletes the workspace's (review finding 1), another workspace's stay."""
    from auditbird.service.keys import KeyStore

    (tmp_path / "erasure_actions.py").write_text(ACTIONS)
    event = {
        "id": "org:1",
        "action": "user.invited",
        "actor": {"id": "42", "name": ADA},
        "metadata": {"email": ADA_MAIL},
    }
    _ok(_cli(tmp_path, "publish", json.dumps(event)))
    with KeyStore(tmp_path / "audit.keys.db") as keys:
        keys.idempotent_put("acme", "k1", "d", 201, ADA.encode())
        keys.idempotent_put("other", "k1", "d", 201, b"kept")
    _ok(_cli(tmp_path, "erase", "--subject", "user:42"))
    with KeyStore(tmp_path / "audit.keys.db") as keys:
        assert keys.idempotent_get("acme", "k1") is None
        assert keys.idempotent_get("other", "k1") == ("d", 201, b"kept")
    for name in ("audit.keys.db", "audit.keys.db-wal"):
        if (tmp_path / name).exists():
            assert ADA.encode() not in (tmp_path / name).read_bytes(), name
