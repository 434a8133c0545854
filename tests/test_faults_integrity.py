"""Damaged log files: what is detected (on open, or by `auditbird check`) and what cannot be.

Each case damages a real SQLite log on disk in one way. The detectable ones must be detected;
the last tests pin down what SQLite by design cannot see (docs/storage-integrity.md says so).
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from auditbird import AuditLog, StoreUnavailable
from auditbird.stores.sqlite_check import check_file

SRC = str(Path(__file__).resolve().parents[1] / "src")
EVENTS = 3_000
PAGE = 4096


def build(path: Path, n: int = EVENTS) -> None:
    with AuditLog(f"sqlite:///{path}") as log:
        for start in range(0, n, 500):
            log.publish_many(
                [
                    {
                        "id": f"monitor:{i % 50}",
                        "action": "monitor.checked",
                        "actor": {"id": f"user_{i % 7}", "name": "User"},
                        "targets": [{"id": str(i % 50), "type": "monitor"}],
                        "metadata": {"region": "ams", "seq": 100_000 + i},
                    }
                    for i in range(start, min(n, start + 500))
                ]
            )
    assert not Path(f"{path}-wal").exists()  # closed cleanly: everything is in the main file


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def replace_once(path: Path, old: bytes, new: bytes) -> None:
    assert len(old) == len(new)
    data = path.read_bytes()
    at = data.index(old)
    overwrite(path, at, new)


def zero_bytes(p: Path) -> None:
    p.write_bytes(b"")


def truncated_to_half(p: Path) -> None:
    os.truncate(p, (p.stat().st_size // 2) // PAGE * PAGE)


def header_overwritten(p: Path) -> None:
    overwrite(p, 0, b"x" * 100)


def page_zeroed(p: Path) -> None:
    pages = p.stat().st_size // PAGE
    overwrite(p, (pages // 2) * PAGE, b"\0" * PAGE)


def page_garbage(p: Path) -> None:
    pages = p.stat().st_size // PAGE
    overwrite(p, (pages // 3) * PAGE, random.Random(7).randbytes(PAGE))


def metadata_json_broken(p: Path) -> None:
    replace_once(p, b'"seq":101234}', b'"seq":101234!')


def event_deleted(p: Path) -> None:  # a valid file with an event taken out (tampering)
    conn = sqlite3.connect(p)
    with conn:
        conn.execute("DELETE FROM audit_target WHERE position = 1500")
        conn.execute("DELETE FROM audit_log WHERE position = 1500")
    conn.close()


DETECTED_ON_OPEN = [zero_bytes, truncated_to_half, header_overwritten, page_zeroed, page_garbage]
DETECTED_BY_CHECK = [*DETECTED_ON_OPEN, metadata_json_broken, event_deleted]


@pytest.mark.parametrize("damage", DETECTED_ON_OPEN, ids=lambda f: f.__name__)
def test_damage_to_the_file_is_refused_on_open(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    path = tmp_path / "a.db"
    build(path)
    damage(path)
    before = path.read_bytes()
    with pytest.raises(StoreUnavailable) as caught, AuditLog(f"sqlite:///{path}") as log:
        log.list(limit=10_000)
    message = str(caught.value)
    assert str(path) in message
    assert "damaged" in message or "empty (0 bytes)" in message, message
    assert path.read_bytes() == before  # refusing wrote nothing


@pytest.mark.parametrize("damage", DETECTED_BY_CHECK, ids=lambda f: f.__name__)
def test_auditbird_check_detects_the_damage(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    path = tmp_path / "a.db"
    build(path)
    damage(path)
    before = path.read_bytes()
    report = check_file(str(path))
    assert not report.ok and report.problems
    assert path.read_bytes() == before  # the check is read-only
    done = cli("check", path)
    assert done.returncode == 1 and done.stdout.startswith(f"damaged: {path}"), done.stdout + done.stderr


def test_auditbird_check_passes_an_intact_log(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    build(path)
    report = check_file(str(path))
    assert report.ok, report.problems
    assert report.events == EVENTS
    done = cli("check", path)
    assert done.returncode == 0 and done.stdout.startswith(f"ok: {path}: {EVENTS} events"), done.stdout


def test_check_quick_finds_page_damage_too(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    build(path)
    assert check_file(str(path), quick=True).ok
    page_zeroed(path)
    report = check_file(str(path), quick=True)
    assert not report.ok and any("quick_check" in p for p in report.problems), report.problems
    done = cli("check", path, "--quick")
    assert done.returncode == 1 and "SQLite quick_check" in done.stdout, done.stdout


def cli(command: str, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from auditbird.cli import main; main()",
            "--store",
            f"sqlite:///{path}",
            command,
            *args,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=120,
    )


# -- the WAL --------------------------------------------------------------------------------


def crash_image(tmp_path: Path) -> tuple[Path, int]:
    """A log whose last commits are still in its WAL, copied as a crash would leave it; returns
    the copy and how many events are in its main file."""
    live = tmp_path / "live" / "a.db"
    build(live, 1_000)
    log = AuditLog(f"sqlite:///{live}")
    for batch in range(3):  # three acknowledged commits, all in the WAL
        log.publish_many([{"id": f"doc:{batch}:{i}", "action": "doc.shared"} for i in range(20)])
    image = tmp_path / "image" / "a.db"
    image.parent.mkdir()
    shutil.copyfile(live, image)
    shutil.copyfile(f"{live}-wal", f"{image}-wal")
    log.close()
    return image, 1_000


def test_a_damaged_wal_frame_is_reported_by_check_before_sqlite_drops_the_commits(tmp_path: Path) -> None:
    image, in_main_file = crash_image(tmp_path)
    wal = Path(f"{image}-wal")
    assert check_file(str(image)).ok  # the intact image
    overwrite(wal, 32 + 24 + 200, b"\xff\xfe")  # page data of the first frame
    report = check_file(str(image))
    assert not report.ok
    assert any("WAL frame 1 is damaged" in p and "later commit(s)" in p for p in report.problems), (
        report.problems
    )
    # What SQLite itself does with it, by design: the three acknowledged commits vanish without
    # an error. This is the limit documented in docs/storage-integrity.md.
    with AuditLog(f"sqlite:///{image}") as log:
        assert len(log.list(limit=10_000).events) == in_main_file


def test_a_damaged_wal_header_is_reported(tmp_path: Path) -> None:
    image, _ = crash_image(tmp_path)
    overwrite(Path(f"{image}-wal"), 12, b"\x00\x00\x00\x09")  # the checkpoint sequence number
    report = check_file(str(image))
    assert any("WAL header is damaged" in p for p in report.problems), report.problems


def test_a_torn_last_commit_is_not_reported_as_damage(tmp_path: Path) -> None:
    """A crash during the last write leaves a torn tail that was never acknowledged: normal."""
    image, _ = crash_image(tmp_path)
    wal = Path(f"{image}-wal")
    frame = 24 + PAGE
    frames = (wal.stat().st_size - 32) // frame
    overwrite(wal, 32 + (frames - 1) * frame + 24 + 10, b"\xff\xfe")  # inside the very last frame
    assert check_file(str(image)).ok


# -- what cannot be detected ------------------------------------------------------------------


def test_a_changed_value_that_still_parses_is_not_detected(tmp_path: Path) -> None:
    """SQLite pages carry no checksums: a byte changed inside a value is a silently wrong answer.
    Only a copy kept elsewhere (a backup, the tamper-evidence chain) can show it."""
    path = tmp_path / "a.db"
    build(path)
    replace_once(path, b'"seq":101234}', b'"seq":909234}')
    assert check_file(str(path)).ok
    with AuditLog(f"sqlite:///{path}") as log:
        seqs = {e.metadata["seq"] for e in log.list(limit=10_000).events}
    assert 909234 in seqs and 101234 not in seqs
