"""Following the PostgreSQL store: woken by LISTEN/NOTIFY (an idle follower sends no query), and
``auditbird relay --from postgresql://...`` exactly once, resumable after kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from auditbird import AuditLog
from auditbird.relay import default_name
from auditbird.row import Row
from auditbird.stores.postgres import PostgresStore


def _waiting_on_audit_log(url: str) -> int:
    """Backends other than the asker queued for a lock on audit_log."""
    with psycopg.connect(url, autocommit=True) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = 'audit_log'::regclass AND NOT granted"
        ).fetchone()
    return int(count)


def _settled(url: str, deadline: float) -> None:
    """Wait (until ``deadline``) for every other client of the database to have sent nothing
    for 0.3 s: the follower past its last read and into its LISTEN wait. A follower that polled
    every 10 ms never settles, and the lock below then finds its query."""
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            (busy,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
                "AND (state <> 'idle' OR state_change > now() - interval '300 milliseconds')"
            ).fetchone()
            if busy == 0:
                return
            time.sleep(0.05)


def test_an_idle_follower_sends_no_query_and_wakes_on_a_commit(postgres_url: str) -> None:
    log = AuditLog(postgres_url)
    log.publish_audit_log({"id": "m:1", "action": "a.early"})
    got: list[str] = []
    stop = threading.Event()

    def consume() -> None:
        for recorded in log.follow(poll_interval=0.01, stop=stop):
            got.append(recorded.event.action)

    thread = threading.Thread(target=consume)
    thread.start()
    try:  # the follower stops whatever happens: a live one would outlast its dropped database
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == ["a.early"]
        # Its read after that event, then its wait (a slow machine may still be reading).
        _settled(postgres_url, deadline)
        # Hold an ACCESS EXCLUSIVE lock for a second: any query the follower sent meanwhile (a
        # poll every 10 ms would send ~100) would queue behind it and show in pg_locks.
        with psycopg.connect(postgres_url) as blocker:
            blocker.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
            time.sleep(1.0)
            waiting = _waiting_on_audit_log(postgres_url)
            blocker.rollback()
        assert waiting == 0, "the idle follower queried the table"
        log.publish_audit_log({"id": "m:2", "action": "a.late"})
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(timeout=10)
        log.close()
    assert got == ["a.early", "a.late"]


def test_follow_misses_nothing_committed_between_its_read_and_its_wait(postgres_url: str) -> None:
    log = AuditLog(postgres_url)
    stop = threading.Event()
    got: list[int] = []

    def consume() -> None:
        for recorded in log.follow(stop=stop):
            got.append(recorded.event.metadata["n"])
            if len(got) == 300:
                stop.set()

    thread = threading.Thread(target=consume)
    thread.start()
    for n in range(300):  # single commits racing the follower's read/wait cycle
        log.publish_audit_log({"id": "m:1", "action": "a.b", "metadata": {"n": n}})
    thread.join(timeout=60)
    stop.set()
    assert got == list(range(300))
    log.close()


def _fill(url: str, count: int, start: int = 0) -> None:
    with PostgresStore(url) as store:
        for first in range(start, start + count, 1_000):
            store.append(
                [
                    Row(f"uid-{n:08d}", f"w{n % 3}", f"m:{n % 7}", "a.b", '{"id":"u","name":"n"}',
                        f'[{{"id":"{n % 5}","type":"t"}}]', f'{{"n":{n}}}', 1_700_000_000_000 + n, 1)
                    for n in range(first, min(first + 1_000, start + count))
                ]
            )  # fmt: skip


def _relay_position(url: str, name: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT position FROM auditbird_relay_position WHERE name = %s", (name,)
        ).fetchone()
    return int(found[0]) if found else 0


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_relay_from_postgres_killed_twice_delivers_every_event_exactly_once(
    postgres_url: str, tmp_path: Path
) -> None:
    dest = tmp_path / "copy.db"
    _fill(postgres_url, 12_000)
    name = default_name(f"sqlite:///{dest}")
    cmd = [sys.executable, "-m", "auditbird", "relay", "--from", postgres_url, "--to", f"sqlite:///{dest}"]
    cmd += ["--batch", "20"]
    kills = []
    for threshold in (1_500, 5_000):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
        deadline = time.monotonic() + 60
        while (
            _relay_position(postgres_url, name) < threshold
            and proc.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.002)
        assert proc.poll() is None, "the relay finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        kills.append(_relay_position(postgres_url, name))
        assert 0 < kills[-1] < 12_000
    _fill(postgres_url, 500, start=12_000)  # committed while the relay was down
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env())
    assert done.returncode == 0, done.stderr
    assert kills[0] < kills[1]
    assert _relay_position(postgres_url, name) == 12_500
    with sqlite3.connect(dest) as conn:
        got = conn.execute("SELECT uid, workspace, metadata FROM audit_log ORDER BY position").fetchall()
    assert [u for u, _, _ in got] == [f"uid-{n:08d}" for n in range(12_500)]  # once each, in order
    assert got[7] == ("uid-00000007", "w1", '{"n":7}')


def test_relay_follow_ships_new_commits_until_sigterm(postgres_url: str, tmp_path: Path) -> None:
    dest = tmp_path / "copy.db"
    _fill(postgres_url, 10)
    cmd = [sys.executable, "-m", "auditbird", "relay", "--from", postgres_url, "--to", f"sqlite:///{dest}"]
    proc = subprocess.Popen([*cmd, "--follow", "--poll-interval", "0.05"], stderr=subprocess.PIPE, env=_env())
    try:
        _fill(postgres_url, 10, start=10)
        name = default_name(f"sqlite:///{dest}")
        deadline = time.monotonic() + 60
        while _relay_position(postgres_url, name) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    with sqlite3.connect(dest) as conn:
        (count,) = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    assert count == 20


def test_relay_refuses_a_postgres_source_that_is_its_destination(postgres_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "auditbird", "relay", "--from", postgres_url, "--to", postgres_url],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert done.returncode == 2
    assert "destination is its source" in done.stderr


def test_a_server_restart_is_survived_by_writers_readers_and_an_idle_follower(
    postgres_server: Any, postgres_url: str
) -> None:
    log = AuditLog(postgres_url)
    log.publish_audit_log({"id": "m:1", "action": "a.before"})
    got: list[str] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            for recorded in log.follow(stop=stop):
                got.append(recorded.event.action)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=consume)
    thread.start()
    deadline = time.monotonic() + 120
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    barrier = threading.Barrier(4)

    def hold_a_connection() -> None:  # so the pool holds several connections the restart cuts
        with log.store._pool.connection():
            barrier.wait()

    readers = [threading.Thread(target=hold_a_connection) for _ in range(4)]
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    postgres_server.stop("fast")  # every pooled and LISTEN connection is cut
    time.sleep(1.5)  # the idle follower notices while the server is down, and keeps waiting
    postgres_server.start()
    log.publish_audit_log({"id": "m:1", "action": "a.after"})  # a stale pooled connection: retried
    assert [e.action for e in log.get_audit_log(event_id="m:1")] == ["a.after", "a.before"]
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=10)
    assert errors == []
    assert got == ["a.before", "a.after"]
    log.close()
