"""The outbox relay: commit order, at least once, resumable, and no duplicates at the destination."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from auditbird import AuditLog, Query
from auditbird.relay import Relay, default_name
from auditbird.stores.sqlite import SQLiteStore

STREAMS = 40


def _fill(path: Path, n: int, start: int = 0) -> None:
    with AuditLog(f"sqlite:///{path}?synchronous=NORMAL") as log:
        for j in range(start, start + n, 2_000):
            log.publish_many(
                [
                    {"id": f"monitor:{i % STREAMS}", "action": "monitor.checked", "metadata": {"i": i}}
                    for i in range(j, min(j + 2_000, start + n))
                ]
            )


def _rows(path: Path) -> list[Any]:
    with SQLiteStore(path) as store:
        return store.read_committed(0, 10**9)


def _relay_position(path: Path, name: str) -> int:
    conn = sqlite3.connect(path, timeout=30)
    try:
        row = conn.execute("SELECT position FROM auditbird_relay_position WHERE name = ?", (name,)).fetchone()
    except sqlite3.OperationalError:  # the relay has not created its table yet
        return 0
    finally:
        conn.close()
    return int(row[0]) if row else 0


def _assert_delivered_exactly_once_in_order(source: Path, dest: Path) -> None:
    sent, got = _rows(source), _rows(dest)
    assert len(got) == len(sent)
    assert len({r.uid for r in got}) == len(got)
    assert [r.uid for r in got] == [r.uid for r in sent]  # commit order, so every stream's order
    per_stream: dict[str, list[str]] = defaultdict(list)
    for r in got:
        per_stream[r.id].append(r.uid)
    assert all(per_stream[s] == [r.uid for r in sent if r.id == s] for s in per_stream)
    assert [r[:9] for r in got] == [r[:9] for r in sent]  # every column as committed


def _relay_cmd(source: Path, dest: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "auditbird",
        "relay",
        "--from",
        f"sqlite:///{source}",
        "--to",
        f"sqlite:///{dest}",
    ]


def test_a_relay_killed_midway_and_restarted_delivers_every_event_exactly_once(tmp_path: Path) -> None:
    source, dest = tmp_path / "app.db", tmp_path / "copy.db"
    _fill(source, 12_000)
    name = default_name(f"sqlite:///{dest}")
    cmd = [*_relay_cmd(source, dest), "--batch", "20"]
    kills = []
    for threshold in (1_500, 5_000):  # SIGKILL twice, at different points, then let it finish
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while (
            _relay_position(source, name) < threshold and proc.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.002)
        assert proc.poll() is None, "the relay finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        kills.append(_relay_position(source, name))
        assert 0 < kills[-1] < 12_000, "the relay should have been killed mid-way"
    # Events committed while the relay was down are shipped too.
    _fill(source, 500, start=12_000)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"position {12_500:,}" in done.stderr
    assert kills[0] < kills[1]
    _assert_delivered_exactly_once_in_order(source, dest)
    assert _relay_position(source, name) == 12_500


class CrashAfterAppend:
    """A destination that stores a batch and then 'crashes' before the relay saves its position."""

    def __init__(self, inner: Any, crash_on: int) -> None:
        self.inner, self.crash_on, self.calls = inner, crash_on, 0
        self.path = getattr(inner, "path", None)

    def append(self, rows: Any) -> None:
        self.inner.append(rows)
        self.calls += 1
        if self.calls == self.crash_on:
            raise KeyboardInterrupt("crash between the destination's ack and the saved position")

    def query(self, q: Query) -> list[Any]:
        return self.inner.query(q)

    def close(self) -> None:
        self.inner.close()


class ListStore:
    """A destination that does not skip known uids itself (as an append-only remote may not)."""

    def __init__(self) -> None:
        self.rows: list[Any] = []

    def append(self, rows: Any) -> None:
        self.rows.extend(rows)

    def query(self, q: Query) -> list[Any]:
        return [r for r in self.rows if r.uid == q.uid and r.workspace == q.workspace][: q.limit]

    def close(self) -> None:
        pass


@pytest.mark.parametrize("destination", ["sqlite", "append-only"])
def test_the_in_doubt_batch_is_not_duplicated(tmp_path: Path, destination: str) -> None:
    source = tmp_path / "app.db"
    _fill(source, 1_000)
    inner: Any = SQLiteStore(tmp_path / "copy.db") if destination == "sqlite" else ListStore()
    crashing = CrashAfterAppend(inner, crash_on=3)
    relay = Relay(f"sqlite:///{source}", crashing, name="dest", batch=100)
    with pytest.raises(KeyboardInterrupt):
        relay.run()
    assert relay.position == 200  # batch 3 reached the destination, its position was never saved
    resumed = Relay(f"sqlite:///{source}", crashing, name="dest", batch=100)
    assert resumed.position == 200 and resumed.pending() == 800
    assert resumed.run() == 800
    stored = _rows(tmp_path / "copy.db") if destination == "sqlite" else inner.rows
    assert [r.uid for r in stored] == [r.uid for r in _rows(source)]


def test_a_position_file_instead_of_the_table(tmp_path: Path) -> None:
    source, dest, pos = tmp_path / "app.db", tmp_path / "copy.db", tmp_path / "relay.pos"
    _fill(source, 300)
    cmd = [*_relay_cmd(source, dest), "--position-file", str(pos), "--batch", "100"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert pos.read_text().strip() == "300" and "relayed 300 event(s)" in first.stderr
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert "relayed 0 event(s); position 300" in again.stderr
    _assert_delivered_exactly_once_in_order(source, dest)
    conn = sqlite3.connect(source)
    assert (
        conn.execute("SELECT name FROM sqlite_master WHERE name = 'auditbird_relay_position'").fetchall()
        == []
    )


def test_follow_ships_new_commits_until_sigterm(tmp_path: Path) -> None:
    source, dest = tmp_path / "app.db", tmp_path / "copy.db"
    _fill(source, 100)
    cmd = [*_relay_cmd(source, dest), "--follow", "--poll-interval", "0.05", "--name", "copy"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _relay_position(source, "copy") == 100)
        _fill(source, 50, start=100)
        _wait_for(lambda: _relay_position(source, "copy") == 150)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "relayed 150 event(s); position 150" in err
    _assert_delivered_exactly_once_in_order(source, dest)


def _wait_for(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_bad_urls_fail_with_one_line(tmp_path: Path) -> None:
    source = tmp_path / "app.db"
    _fill(source, 1)
    same = subprocess.run(_relay_cmd(source, source), capture_output=True, text=True, timeout=60)
    assert (
        same.returncode == 2
        and same.stderr == "error: the relay's destination is its source; name another store\n"
    )
    cmd = [sys.executable, "-m", "auditbird", "relay", "--from", "http://x", "--to", f"sqlite:///{source}"]
    wrong = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "reads a SQLite file" in wrong.stderr
