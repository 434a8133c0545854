"""`checkpoint --export` / `verify --export` of a log retention has thinned: the export carries
each expired leaf's hash, so the offline check still rebuilds the signed root, counts what
expired, and fails on a changed kept event or a forged expired hash."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from auditbird import AuditLog
from auditbird.event import now_ms
from auditbird.provable import tree_root
from auditbird.provable.checkpoint import Checkpoint
from auditbird.provable.verify import ExportError, verify_export, write_export
from auditbird.retention import apply_retention, set_policy

DAY = 86_400_000


def _thinned(db: Path) -> AuditLog:
    """Old and young events interleaved (a back-filled old one mid-log), then a 365d policy
    applied: 30 of 1,230 events (+ the retention.set and .apply events) expire, across fold chunks."""
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    now = now_ms()
    events = []
    for i in range(1200):
        old = i < 20 or i in (700, 1023, 1024) or 1100 <= i < 1107
        stamp = now - (500 * DAY) if old else now - i
        events.append({"id": f"u:{i}", "action": "user.login", "timestamp": stamp, "metadata": {"i": i}})
    log.publish_many(events)
    log.publish_many([{"id": "m:1", "action": "monitor.down", "metadata": {"n": n}} for n in range(30)])
    set_policy(log, "365d")
    assert apply_retention(log).removed == 30
    return log


@pytest.fixture(scope="module")
def thinned(tmp_path_factory: pytest.TempPathFactory) -> tuple[AuditLog, list[bytes]]:
    log = _thinned(tmp_path_factory.mktemp("thin") / "a.db")
    size, _ = tree_root(log)
    out = io.BytesIO()
    assert write_export(log, size, out) == size
    return log, out.getvalue().splitlines(keepends=True)


def _leaf_lines(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if not line.startswith(b'{"tree_leaves"')]


def _at(lines: list[bytes], n: int) -> int:
    """The place in ``lines`` of leaf line ``n`` (0-based; the tree's records sit between)."""
    return [i for i, line in enumerate(lines) if not line.startswith(b'{"tree_leaves"')][n]


def _verify(log: AuditLog, lines: list[bytes], size: int | None = None) -> object:
    size, root = tree_root(log, size)
    return verify_export(io.BytesIO(b"".join(lines)), Checkpoint("o", size, root))


def test_expired_positions_are_exported_as_their_kept_leaf_hash(
    thinned: tuple[AuditLog, list[bytes]],
) -> None:
    log, lines = thinned
    lines = _leaf_lines(lines)
    leaves = log.store.tree_leaves("acme", 0, 5000)  # type: ignore[attr-defined]
    assert len(lines) == len(leaves) == 1232  # 1,230, retention.set, retention.apply
    expired = [json.loads(line) for line in lines if line.startswith(b'{"expired"')]
    assert [e["index"] for e in expired] == [*range(20), 700, 1023, 1024, *range(1100, 1107)]
    for e in expired:
        assert e["expired"] is True and base64.b64decode(e["leaf_hash"]) == leaves[e["index"]][2]
    for line, (_, _, digest) in zip(lines, leaves, strict=True):
        if not line.startswith(b'{"expired"'):
            assert hashlib.sha256(b"\x00" + line.rstrip(b"\n")).digest() == digest


def test_a_thinned_export_verifies_and_counts_what_expired(thinned: tuple[AuditLog, list[bytes]]) -> None:
    log, lines = thinned
    report = _verify(log, lines)
    assert report.ok, report.message()  # type: ignore[attr-defined]
    assert report.expired == (30, 1, 1107)  # type: ignore[attr-defined]
    assert report.message() == (  # type: ignore[attr-defined]
        "verified 1232 events up to checkpoint 1232; 30 of them (#1-#1107) expired by retention policy"
    )
    part = _verify(log, lines, 1024)  # an older, smaller checkpoint: only its expired leaves count
    assert part.ok and part.expired == (22, 1, 1024)  # type: ignore[attr-defined]


def _replace(lines: list[bytes], n: int, edit: object) -> list[bytes]:
    at = _at(lines, n)
    value = json.loads(lines[at])
    edit(value)  # type: ignore[operator]
    return [*lines[:at], json.dumps(value).encode() + b"\n", *lines[at + 1 :]]


def test_a_changed_kept_event_or_a_forged_expired_hash_fails_naming_it(
    thinned: tuple[AuditLog, list[bytes]],
) -> None:
    log, lines = thinned
    changed = _replace(lines, 500, lambda e: e["metadata"].update(i=9999))
    report = _verify(log, changed)
    assert (report.ok, report.number, report.problem) == (False, 501, "changed")  # type: ignore[attr-defined]
    assert report.message() == (  # type: ignore[attr-defined]
        "event #501: changed: event #501 no longer hashes to the leaf the tree recorded for it"
    )
    forged_hash = base64.b64encode(hashlib.sha256(b"\x00{}").digest()).decode()
    forged = _verify(log, _replace(lines, 700, lambda e: e.update(leaf_hash=forged_hash)))
    assert (forged.ok, forged.number, forged.problem) == (False, 701, "changed")  # type: ignore[attr-defined]
    # An expired line moved elsewhere is named at the place it now stands.
    a, b = _at(lines, 699), _at(lines, 700)
    moved = [*lines[:a], lines[b], lines[a], *lines[b + 1 :]]
    report = _verify(log, moved)
    assert (report.ok, report.number, report.problem) == (False, 700, "reordered")  # type: ignore[attr-defined]


def test_without_the_record_a_change_still_fails_but_unnamed(thinned: tuple[AuditLog, list[bytes]]) -> None:
    log, lines = thinned
    bare = _leaf_lines(_replace(lines, 500, lambda e: e["metadata"].update(i=9999)))
    assert _verify(log, _leaf_lines(lines)).ok  # type: ignore[attr-defined]
    report = _verify(log, bare)
    assert (report.ok, report.number, report.problem) == (False, None, "changed")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b'{"expired":true,"index":0}\n', "nor an expired leaf"),
        (b'{"expired":false,"index":0,"leaf_hash":"AA=="}\n', "nor an expired leaf"),
        (b'{"expired":true,"index":"0","leaf_hash":"AA=="}\n', "nor an expired leaf"),
        (b'{"expired":true,"index":0,"leaf_hash":"AA=="}\n', "not the base64 of a 32-byte"),
        (b'{"expired":true,"index":0,"leaf_hash":"%%%"}\n', "not the base64 of a 32-byte"),
    ],
)
def test_a_malformed_expired_line_is_refused_naming_it(line: bytes, says: str) -> None:
    with pytest.raises(ExportError, match=f"line 1.*{says}"):
        verify_export(io.BytesIO(line), Checkpoint("o", 1, b"\0" * 32))


def _cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditbird", "--store", f"sqlite:///{db}", "-w", "acme", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


@pytest.mark.slow  # three CLI subprocesses
def test_the_cli_exports_and_verifies_a_thinned_log_offline(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    _thinned(db).close()
    export, cp, key = tmp_path / "e.ndjson", tmp_path / "cp.txt", tmp_path / "key.txt"
    signed = _cli(db, "checkpoint", "--export", str(export))
    assert signed.returncode == 0, signed.stderr
    cp.write_text(signed.stdout)
    key.write_text(_cli(db, "checkpoint", "--public-key").stdout)
    offline = ["verify", "--export", str(export), "--checkpoint", str(cp), "--public-key", str(key)]
    done = _cli(db, *offline)
    assert (done.returncode, done.stdout) == (
        0,
        "verified 1232 events up to checkpoint 1232; 30 of them (#1-#1107) expired by retention policy\n",
    ), done.stderr
    lines = export.read_bytes().splitlines(keepends=True)
    export.write_bytes(b"".join(_replace(lines, 40, lambda e: e.update(action="user.logout"))))
    failed = _cli(db, *offline)
    assert (failed.returncode, failed.stdout) == (
        1,
        "FAILED event #41: changed: event #41 no longer hashes to the leaf the tree recorded for it\n",
    ), failed.stderr
