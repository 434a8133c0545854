"""`auditbird verify` catches a SQLite file edited behind auditbird's back and names the place.

Each test writes a real log, signs a checkpoint with the real CLI, edits the file with sqlite3
as an intruder with write access would, and runs `auditbird verify` in a subprocess.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from auditbird import AuditLog

CLI = [sys.executable, "-m", "auditbird"]
pytestmark = pytest.mark.slow  # a CLI subprocess per step: ~1 s each


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=os.environ.copy())


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A log of 10 events, a signed checkpoint of them, and the verifier key."""
    db = tmp_path / "audit.db"
    log = AuditLog(f"sqlite:///{db}")
    for n in range(1, 11):
        log.publish_audit_log({"id": f"m:{n % 3}", "action": "monitor.down", "metadata": {"n": n}})
    log.close()
    cp, key = tmp_path / "cp.txt", tmp_path / "key.txt"
    cp.write_text(_cli("--store", f"sqlite:///{db}", "checkpoint").stdout)
    key.write_text(_cli("--store", f"sqlite:///{db}", "checkpoint", "--public-key").stdout)
    assert cp.read_text().split("\n")[1] == "10"
    return db, cp, key


_FORGED = (
    "INSERT INTO audit_log (position, uid, workspace, id, action, actor, targets, metadata, timestamp, "
    "version) VALUES ({position}, 'forged', '', 'm:1', 'monitor.down', "
    '\'{{"id":"","name":"system"}}\', \'[]\', {metadata}, 1, 1)'
)


def _verify(db: Path, cp: Path) -> subprocess.CompletedProcess[str]:
    return _cli("verify", "--store", f"sqlite:///{db}", "--checkpoint", str(cp))


def _sql(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def test_an_untouched_log_verifies(signed: tuple[Path, Path, Path]) -> None:
    db, cp, _ = signed
    done = _verify(db, cp)
    assert (done.returncode, done.stdout) == (0, "verified 10 events up to checkpoint 10\n")


def test_an_older_checkpoint_is_proved_extended_by_the_current_tree(signed: tuple[Path, Path, Path]) -> None:
    db, cp, key = signed
    log = AuditLog(f"sqlite:///{db}")
    log.publish_many([{"id": "m:1", "action": "monitor.up"}] * 5)
    log.close()
    done = _cli("verify", "--store", f"sqlite:///{db}", "--checkpoint", str(cp), "--public-key", str(key))
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "verified 10 events up to checkpoint 10; the current tree (15 events) extends it "
        "(consistency proof verified)\n"
    )


def test_a_changed_byte_of_metadata_is_named(signed: tuple[Path, Path, Path]) -> None:
    db, cp, _ = signed
    _sql(db, "UPDATE audit_log SET metadata = '{\"n\":6}' WHERE position = 5")
    done = _verify(db, cp)
    assert done.returncode == 1
    assert done.stdout.startswith("FAILED event #5: changed: store position 5 ")


def test_a_deleted_row_is_named(signed: tuple[Path, Path, Path]) -> None:
    db, cp, _ = signed
    _sql(db, "DELETE FROM audit_log WHERE position = 4")
    done = _verify(db, cp)
    assert done.returncode == 1
    assert done.stdout.startswith(
        "FAILED event #4: missing: the event recorded at store position 4 was deleted"
    )


def test_a_row_inserted_in_the_middle_is_named(signed: tuple[Path, Path, Path]) -> None:
    db, cp, _ = signed
    _sql(
        db,
        "UPDATE audit_log SET position = position + 1000 WHERE position >= 6",
        "UPDATE audit_log SET position = position - 999 WHERE position >= 1000",
        _FORGED.format(position=6, metadata="'{\"n\":0}'"),
    )
    done = _verify(db, cp)
    assert done.returncode == 1
    assert done.stdout.startswith("FAILED event #6: inserted: store position 6 (uid forged)")


def test_a_row_added_at_the_end_outside_the_tree_is_named(signed: tuple[Path, Path, Path]) -> None:
    db, cp, _ = signed
    _sql(
        db,
        _FORGED.format(position=11, metadata="NULL"),
    )
    done = _verify(db, cp)
    assert done.returncode == 1
    assert done.stdout.startswith(
        "FAILED event #11: inserted: store position 11 (uid forged) is not in the tree"
    )


def _swap(db: Path, a: int, b: int) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE audit_log SET position = -1 WHERE position = ?", (a,))
        conn.execute("UPDATE audit_log SET position = ? WHERE position = ?", (a, b))
        conn.execute("UPDATE audit_log SET position = ? WHERE position = -1", (b,))
    conn.close()


def test_two_swapped_neighbours_are_named(signed: tuple[Path, Path, Path]) -> None:
    db, cp, _ = signed
    _swap(db, 3, 4)
    done = _verify(db, cp)
    assert done.returncode == 1
    assert done.stdout.startswith("FAILED event #3: reordered: events #3 and #4 swapped places")


def test_two_swapped_distant_rows_are_named(signed: tuple[Path, Path, Path]) -> None:
    db, cp, _ = signed
    _swap(db, 2, 7)
    done = _verify(db, cp)
    assert done.returncode == 1
    assert done.stdout.startswith("FAILED event #2: reordered: store position 2 ")
    assert "holds what was recorded as event #7" in done.stdout


def test_a_truncated_tail_re_appended_through_auditbird_is_named(signed: tuple[Path, Path, Path]) -> None:
    db, cp, _ = signed
    _sql(db, "DELETE FROM audit_target WHERE position >= 8", "DELETE FROM audit_log WHERE position >= 8")
    log = AuditLog(f"sqlite:///{db}")
    log.publish_many([{"id": "m:1", "action": "monitor.down", "metadata": {"n": n}} for n in (8, 9, 10)])
    log.close()
    done = _verify(db, cp)
    assert done.returncode == 1
    assert done.stdout.startswith("FAILED event #8: changed: store position 8 ")


def test_a_rewrite_that_rebuilds_the_tree_too_fails_against_the_checkpoint(
    signed: tuple[Path, Path, Path],
) -> None:
    """An intruder who also rebuilds the tree's tables is caught by the signed root (no place
    can be named: only an untouched record of the leaves could)."""
    db, cp, _ = signed
    _sql(
        db,
        "UPDATE audit_log SET metadata = '{\"n\":99}' WHERE position = 5",
        "DELETE FROM merkle_node",
        "DELETE FROM merkle_leaf",
        "DELETE FROM merkle_tree",
    )
    log = AuditLog(f"sqlite:///{db}")
    log.publish_audit_log({"id": "m:1", "action": "monitor.down"})  # rebuilds the tree from the rows
    log.close()
    done = _verify(db, cp)
    assert done.returncode == 1
    assert done.stdout.startswith("FAILED rewritten: the events and the tree agree, but their first 10")


def test_the_offline_export_verifies_and_a_changed_export_fails(
    signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    db, _, key = signed
    export, cp = tmp_path / "events.ndjson", tmp_path / "cp2.txt"
    cp.write_text(_cli("--store", f"sqlite:///{db}", "checkpoint", "--export", str(export)).stdout)
    args = ["verify", "--export", str(export), "--checkpoint", str(cp), "--public-key", str(key)]
    done = _cli(*args)
    assert (done.returncode, done.stdout) == (0, "verified 10 events up to checkpoint 10\n")
    lines = export.read_text().splitlines(keepends=True)
    assert lines[0].startswith('{"tree_leaves":{"from":0,') and '"n":4' in lines[4]  # event #4
    export.write_text("".join(lines[:4] + [lines[4].replace('"n":4', '"n":5')] + lines[5:]))
    done = _cli(*args)
    assert (done.returncode, done.stdout) == (
        1,
        "FAILED event #4: changed: event #4 no longer hashes to the leaf the tree recorded for it\n",
    )
    export.write_text("".join(line for line in lines if "tree_leaves" not in line).replace('"n":4', '"n":5'))
    done = _cli(*args)  # without the tree's record of the leaves: that it differs, not where
    assert done.returncode == 1 and "do not hash to the checkpoint's root" in done.stdout


@pytest.mark.parametrize(
    ("mangle", "says"),
    [
        (lambda cp: cp.replace("\n10\n", "\n11\n"), "does not verify"),
        (lambda cp: cp.split("\n\n")[0] + "\n", "not a signed note"),
    ],
)
def test_a_bad_checkpoint_is_a_clear_error_with_exit_2(signed: tuple[Path, Path, Path], mangle, says) -> None:  # type: ignore[no-untyped-def]
    db, cp, _ = signed
    cp.write_text(mangle(cp.read_text()))
    done = _verify(db, cp)
    assert done.returncode == 2 and says in done.stderr


def test_a_checkpoint_of_another_workspace_is_refused_naming_it(signed: tuple[Path, Path, Path]) -> None:
    db, cp, _ = signed
    done = _cli("verify", "--store", f"sqlite:///{db}", "-w", "acme", "--checkpoint", str(cp))
    assert (
        done.returncode == 2
        and "the checkpoint is for workspace '' (origin 'auditbird-audit')" in done.stderr
    )


def test_an_export_that_is_not_ndjson_or_too_short_is_exit_2(
    signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, cp, key = signed
    export = tmp_path / "x.ndjson"
    export.write_text("uid,workspace\n")
    done = _cli("verify", "--export", str(export), "--checkpoint", str(cp), "--public-key", str(key))
    assert done.returncode == 2 and "line 1 is not JSON" in done.stderr
    export.write_text('{"uid": "a"}\n')
    done = _cli("verify", "--export", str(export), "--checkpoint", str(cp), "--public-key", str(key))
    assert done.returncode == 2 and "the export holds 1 events; the checkpoint covers 10" in done.stderr
