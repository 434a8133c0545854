"""Bad input to the PostgreSQL store: one clear error each, saying what to do, nothing half-done."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from auditbird import AuditLog, StoreUnavailable
from auditbird.stores.postgres import PostgresStore
from auditbird.stores.postgres_schema import SCHEMA_VERSION


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: nobody listens


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://u:secret@127.0.0.1:notaport/db", "Port could not be cast"),
        ("postgresql://u:secret@127.0.0.1/db?nonsense=1", 'invalid URI query parameter: "nonsense"'),
        ("postgresql://u:secret@127.0.0.1/db?pool_size=many", "pool_size='many' in the store URL"),
    ],
)
def test_a_wrong_url_says_what_is_wrong_without_the_password(url: str, says: str) -> None:
    with pytest.raises(ValueError) as info:
        AuditLog(url)
    assert says in str(info.value)
    assert "secret" not in str(info.value)


def test_a_refused_connection_says_to_check_the_server() -> None:
    port = _closed_port()
    with pytest.raises(StoreUnavailable) as info:
        PostgresStore(f"postgresql://u:secret@127.0.0.1:{port}/db", connect_timeout=2)
    message = str(info.value)
    assert f"cannot connect to PostgreSQL at postgresql://127.0.0.1:{port}/db" in message
    assert "Connection refused" in message and "check that PostgreSQL runs there" in message
    assert "secret" not in message


def test_a_missing_database_says_to_create_it(postgres_server: Any) -> None:
    with pytest.raises(StoreUnavailable, match="create the database"):
        PostgresStore(postgres_server.url(f"missing_{uuid.uuid4().hex[:8]}"))


def test_no_schema_and_no_right_to_create_it_says_who_can(postgres_server: Any, postgres_url: str) -> None:
    role = f"r_{uuid.uuid4().hex[:8]}"
    with postgres_server.admin() as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    url = postgres_url.replace("postgresql://auditbird@", f"postgresql://{role}@", 1)
    with pytest.raises(StoreUnavailable) as info:
        PostgresStore(url)
    message = str(info.value)
    assert "has no auditbird schema" in message
    assert "connect once as the database owner" in message
    with psycopg.connect(postgres_url) as conn:  # nothing half-created
        (tables,) = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'audit%'").fetchone()
    assert tables == 0
    # Once the owner created the schema and granted the role its rights, the role works.
    PostgresStore(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO "{role}"')
    with AuditLog(url) as log:
        stored = log.publish_audit_log({"id": "m:1", "action": "a.b"})
        assert log.event(stored.uid).uid == stored.uid


def test_a_schema_newer_than_the_code_says_to_upgrade(postgres_url: str) -> None:
    PostgresStore(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE auditbird_meta SET value = %s", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreUnavailable) as info:
        PostgresStore(postgres_url)
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this auditbird understands" in str(info.value)
    assert "upgrade auditbird" in str(info.value)


def test_the_schema_version_is_recorded_and_reopening_migrates_nothing(postgres_url: str) -> None:
    with PostgresStore(postgres_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
    with PostgresStore(postgres_url) as store:
        assert store.schema_version() == SCHEMA_VERSION


def test_four_processes_opening_a_fresh_database_at_once_migrate_it_once(postgres_url: str) -> None:
    code = (
        "import sys; from auditbird.stores.postgres import PostgresStore; PostgresStore(sys.argv[1]).close()"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, postgres_url], env=env, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()


def test_the_cli_reports_a_refused_connection_in_one_line() -> None:
    url = f"postgresql://u:secret@127.0.0.1:{_closed_port()}/db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "auditbird", "--store", url, "query"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "cannot connect to PostgreSQL" in done.stderr
    assert "secret" not in done.stderr


def _terminate_next_waiter(url: str, seen: set[int]) -> None:
    """End the connection of the next backend queued on audit_log's lock, from the server."""
    with psycopg.connect(url, autocommit=True) as admin:
        for _ in range(400):
            waiting = {
                pid
                for (pid,) in admin.execute(
                    "SELECT pid FROM pg_locks WHERE relation = 'audit_log'::regclass AND NOT granted"
                ).fetchall()
            } - seen
            if waiting:
                pid = waiting.pop()
                seen.add(pid)
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                return
            time.sleep(0.05)
    raise AssertionError("the batch never reached the lock")


@pytest.mark.parametrize("losses", [1, 2])
def test_a_connection_lost_mid_batch_is_all_or_nothing_and_the_caller_told(
    postgres_url: str, losses: int
) -> None:
    store = PostgresStore(postgres_url, pool_size=2)
    log = AuditLog(store)
    log.publish_audit_log({"id": "m:0", "action": "a.b"})
    failure: list[BaseException] = []

    def publish() -> None:
        try:
            log.publish_many([{"id": "m:1", "action": "a.b"} for _ in range(100)])
        except BaseException as exc:
            failure.append(exc)

    # Another writer holds the write lock, so the batch waits inside its transaction; then its
    # connection is ended from the server side, once (a fresh connection is asked whether the
    # batch arrived, and it is sent again) or twice (the caller is told none of it was stored).
    with psycopg.connect(postgres_url) as blocker:
        blocker.execute("LOCK TABLE audit_log IN EXCLUSIVE MODE")
        thread = threading.Thread(target=publish)
        thread.start()
        seen: set[int] = set()
        for _ in range(losses):
            _terminate_next_waiter(postgres_url, seen)
        if losses == 1:
            with psycopg.connect(postgres_url, autocommit=True) as admin:  # the resend queues again
                while not admin.execute(
                    "SELECT 1 FROM pg_locks WHERE relation = 'audit_log'::regclass AND NOT granted"
                ).fetchall():
                    time.sleep(0.05)
        blocker.rollback()
        thread.join(60)
    if losses == 1:
        assert failure == []
        assert [r.position for r in store.read_committed(0, 1_000)] == list(range(1, 102))
    else:
        assert len(failure) == 1 and isinstance(failure[0], StoreUnavailable)
        assert "none of the 100 events was stored" in str(failure[0])
        assert store.last_position() == 1
    log.publish_audit_log({"id": "m:2", "action": "a.b"})  # the pool has healthy connections again
    store.close()
