"""A line nested too deep for the parsers (``[`` x 100,000) is a clean error naming the line,
not a RecursionError traceback: in ``verify --export`` (exit 2, in the fast check and the
exact one) and in the store check (a row edited to such JSON: exit 1, naming the event)."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from auditbird import AuditLog
from auditbird.provable import tree_root
from auditbird.provable.checkpoint import Checkpoint
from auditbird.provable.verify import ExportError, verify_export, verify_store, write_export

DEEP = 100_000


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Checkpoint, list[bytes]]:
    log = AuditLog(f"sqlite:///{tmp_path / 'a.db'}")
    for n in range(1, 6):
        log.publish_audit_log({"id": f"m:{n}", "action": "monitor.down", "metadata": {"n": n}})
    size, root = tree_root(log)
    out = io.BytesIO()
    write_export(log, size, out)
    log.close()
    return Checkpoint("o", size, root), out.getvalue().splitlines(keepends=True)


@pytest.mark.parametrize(
    "deep",
    [
        b"[" * DEEP + b"\n",  # not an event: read by the fast check's parse
        b'{"a":' * DEEP + b"\n",
        b'{"action":' + b"[" * DEEP + b"\n",  # looks like an event: hashed, then parsed by the exact check
        b'{"action":"x","metadata":' + b"[" * DEEP + b"1" + b"]" * DEEP + b',"uid":"u"}\n',  # valid JSON
    ],
)
@pytest.mark.parametrize("at", [3, 7])  # among the checkpoint's events; past them
def test_a_line_nested_too_deep_is_an_export_error_naming_it(
    exported: tuple[Checkpoint, list[bytes]], deep: bytes, at: int
) -> None:
    checkpoint, lines = exported
    text = b"".join(lines[:at] + [deep] + lines[at + 1 :]) if at < len(lines) else b"".join(lines) + deep
    with pytest.raises(ExportError) as caught:
        verify_export(io.BytesIO(text), checkpoint)
    number = at + 1 if at < len(lines) else len(lines) + 1
    assert f"line {number} nests too deep" in str(caught.value)


def test_the_cli_exits_2_without_a_traceback(tmp_path: Path) -> None:
    db, export, cp, key = (tmp_path / n for n in ("a.db", "e.ndjson", "cp.txt", "key.txt"))
    log = AuditLog(f"sqlite:///{db}")
    for n in range(3):
        log.publish_audit_log({"id": "m:1", "action": "monitor.down", "metadata": {"n": n}})
    log.close()
    env = os.environ.copy()
    cli = [sys.executable, "-m", "auditbird", "--store", f"sqlite:///{db}"]
    run = {"capture_output": True, "text": True, "env": env, "timeout": 120}
    cp.write_text(subprocess.run([*cli, "checkpoint", "--export", str(export)], check=True, **run).stdout)  # type: ignore[call-overload]
    key.write_text(subprocess.run([*cli, "checkpoint", "--public-key"], check=True, **run).stdout)  # type: ignore[call-overload]
    lines = export.read_bytes().splitlines(keepends=True)
    export.write_bytes(b"".join([*lines[:2], b"[" * DEEP + b"\n", *lines[3:]]))
    verify = [sys.executable, "-m", "auditbird", "verify", "--export", str(export)]
    done = subprocess.run([*verify, "--checkpoint", str(cp), "--public-key", str(key)], **run)  # type: ignore[call-overload]
    assert done.returncode == 2, (done.stdout, done.stderr[-2000:])
    assert "line 3 nests too deep" in done.stderr and "Traceback" not in done.stderr


def _five_events_the_third_edited_to_a_deep_nest(db: Path) -> int:
    """A log of five events whose third row's metadata was edited in the file to nest too
    deep to canonicalise; that row's store position."""
    log = AuditLog(f"sqlite:///{db}")
    for n in range(1, 6):
        log.publish_audit_log({"id": "m:1", "action": "monitor.down", "metadata": {"n": n}})
    log.close()
    conn = sqlite3.connect(db)
    with conn:
        (position,) = conn.execute(
            "SELECT position FROM audit_log ORDER BY position LIMIT 1 OFFSET 2"
        ).fetchone()
        conn.execute(
            "UPDATE audit_log SET metadata = ? WHERE position = ?", ("[" * DEEP + "]" * DEEP, position)
        )
    conn.close()
    return int(position)


def test_a_stored_row_edited_to_a_deep_nest_is_named_by_the_store_check(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    position = _five_events_the_third_edited_to_a_deep_nest(db)
    log = AuditLog(f"sqlite:///{db}")
    report = verify_store(log)
    log.close()
    assert (report.ok, report.number, report.problem) == (False, 3, "changed")
    assert f"store position {position}" in report.detail and "nests too deep" in report.detail
    done = subprocess.run(
        [sys.executable, "-m", "auditbird", "--store", f"sqlite:///{db}", "verify"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert done.returncode == 1, (done.stdout, done.stderr[-2000:])
    assert done.stdout.startswith("FAILED event #3: changed: ") and "Traceback" not in done.stderr


def test_a_row_edited_to_a_deep_nest_is_exported_as_it_stands(tmp_path: Path) -> None:
    """`checkpoint --export` writes such a row as it stands, like any other altered row (it
    raised a RecursionError traceback), and `verify --export` names its line."""
    db, export, cp, key = (tmp_path / n for n in ("a.db", "e.ndjson", "cp.txt", "key.txt"))
    _five_events_the_third_edited_to_a_deep_nest(db)
    cli = [sys.executable, "-m", "auditbird", "--store", f"sqlite:///{db}"]
    run = {"capture_output": True, "text": True, "env": os.environ.copy(), "timeout": 120}
    made = subprocess.run([*cli, "checkpoint", "--export", str(export)], **run)  # type: ignore[call-overload]
    assert made.returncode == 0, made.stderr[-2000:]
    cp.write_text(made.stdout)
    key.write_text(subprocess.run([*cli, "checkpoint", "--public-key"], check=True, **run).stdout)  # type: ignore[call-overload]
    lines = export.read_bytes().splitlines()
    assert len(lines) == 6 and lines[0].startswith(b'{"tree_leaves":')  # the record, then 5 events
    assert lines[3].startswith(b'{"uid":') and b'"metadata":' + b"[" * DEEP in lines[3]
    verify = [sys.executable, "-m", "auditbird", "verify", "--export", str(export)]
    done = subprocess.run([*verify, "--checkpoint", str(cp), "--public-key", str(key)], **run)  # type: ignore[call-overload]
    assert done.returncode == 2, (done.stdout, done.stderr[-2000:])
    assert "line 4 nests too deep" in done.stderr and "Traceback" not in done.stderr
