"""``verify --export`` refuses a line that names a key twice in any object: a parser that keeps
the last value and one that keeps the first would read two different events from it, so the
line cannot be said to verify (RFC 7493 I-JSON, which RFC 8785 requires, forbids it)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from auditbird import AuditLog
from auditbird.provable import tree_root
from auditbird.provable.checkpoint import Checkpoint
from auditbird.provable.export_verbatim import verify_verbatim
from auditbird.provable.verify import MAX_LINE_BYTES, ExportError, verify_export, write_export
from auditbird.stores.jcs import decode_canonical


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Checkpoint, list[bytes]]:
    log = AuditLog(f"sqlite:///{tmp_path / 'a.db'}")
    for n in range(1, 6):
        log.publish_audit_log({"id": f"m:{n}", "action": "monitor.down", "metadata": {"n": n, "k": {"x": n}}})
    size, root = tree_root(log)
    out = io.BytesIO()
    write_export(log, size, out)
    log.close()
    lines = out.getvalue().splitlines(keepends=True)
    assert lines[0].startswith(b'{"tree_leaves":') and lines[3].startswith(b'{"action":"monitor.down"')
    return Checkpoint("o", size, root), lines


def _with(lines: list[bytes], at: int, line: bytes) -> bytes:
    return b"".join(lines[:at] + [line] + lines[at + 1 :])


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        # the first key read says another action; the last (kept by Python's parser) the signed one
        (lambda line: line.replace(b'{"action":', b'{"action":"user.delete","action":', 1), "action"),
        (lambda line: line.replace(b'"x":3', b'"x":9,"x":3', 1), "x"),  # nested two deep
        (lambda line: line.replace(b'{"action":', b'{"\\u0061ction":"user.delete","action":', 1), "action"),
    ],
)
def test_an_event_line_naming_a_key_twice_is_refused_naming_line_and_key(
    exported: tuple[Checkpoint, list[bytes]],
    edit,
    key,  # type: ignore[no-untyped-def]
) -> None:
    checkpoint, lines = exported
    forged = edit(lines[3])
    assert forged != lines[3]
    with pytest.raises(ExportError) as caught:
        verify_export(io.BytesIO(_with(lines, 3, forged)), checkpoint)
    assert f"line 4 names the key {key!r} more than once" in str(caught.value)


def test_a_record_or_expired_line_naming_a_key_twice_is_refused(
    exported: tuple[Checkpoint, list[bytes]],
) -> None:
    """The fast check parses the lines that are not events (the tree's record, expired leaves):
    there too, a repeated key is refused, not read as its last value."""
    checkpoint, lines = exported
    record = lines[0].replace(b'{"from":0,', b'{"from":7,"from":0,', 1)
    with pytest.raises(ExportError) as caught:
        verify_export(io.BytesIO(_with(lines, 0, record)), checkpoint)
    assert "line 1 names the key 'from' more than once" in str(caught.value)


def test_canonical_bytes_cannot_repeat_a_key_so_the_fast_check_never_accepts_one(
    exported: tuple[Checkpoint, list[bytes]],
) -> None:
    """The claim the fast check rests on: a line it hashes as it stands is RFC 8785 output,
    made from a parsed object, whose keys are unique; a line repeating a key is never its own
    canonical form, so the fast check gives way and the exact check decides."""
    checkpoint, lines = exported
    forged = lines[3].replace(b'{"action":', b'{"action":"user.delete","action":', 1)
    assert decode_canonical(forged)[1] != forged.rstrip(b"\n")
    for line in lines:
        assert decode_canonical(line)[1] == line.rstrip(b"\n")  # an untouched export is canonical
    assert verify_verbatim(io.BytesIO(_with(lines, 3, forged)), checkpoint, MAX_LINE_BYTES) is None
    record = lines[0].replace(b'{"from":0,', b'{"from":7,"from":0,', 1)
    assert verify_verbatim(io.BytesIO(_with(lines, 0, record)), checkpoint, MAX_LINE_BYTES) is None


def test_the_cli_exits_2_for_a_repeated_key(tmp_path: Path) -> None:
    db, export, cp, key = (tmp_path / n for n in ("a.db", "e.ndjson", "cp.txt", "key.txt"))
    log = AuditLog(f"sqlite:///{db}")
    for n in range(3):
        log.publish_audit_log({"id": "m:1", "action": "monitor.down", "metadata": {"n": n}})
    log.close()
    cli = [sys.executable, "-m", "auditbird", "--store", f"sqlite:///{db}"]
    env = os.environ.copy()
    cp.write_text(
        subprocess.run(
            [*cli, "checkpoint", "--export", str(export)], capture_output=True, text=True, env=env, check=True
        ).stdout
    )
    key.write_text(
        subprocess.run(
            [*cli, "checkpoint", "--public-key"], capture_output=True, text=True, env=env, check=True
        ).stdout
    )
    lines = export.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'{"action":', b'{"action":"user.delete","action":', 1)
    export.write_bytes(b"".join(lines))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditbird",
            "verify",
            "--export",
            str(export),
            "--checkpoint",
            str(cp),
            "--public-key",
            str(key),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 2, done.stdout
    assert "line 2 names the key 'action' more than once" in done.stderr and "Traceback" not in done.stderr
