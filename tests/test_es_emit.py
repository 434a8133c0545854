"""Transactional emit: the audit row commits or rolls back with the change it describes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from auditbird import AuditError, AuditLog, AuditValidationError, emit
from auditbird.stores.sqlite import SQLiteStore

EVENT = {"id": "monitor:1", "action": "maintenance.scheduled", "metadata": {"window": "02:00-03:00"}}


def _app(path: Path, **kw: object) -> sqlite3.Connection:
    conn = sqlite3.connect(path, **kw)  # type: ignore[arg-type]
    conn.execute("CREATE TABLE IF NOT EXISTS monitor (id INTEGER PRIMARY KEY, url TEXT)")
    conn.commit()
    return conn


def _stored(path: Path) -> list[str]:
    with AuditLog(f"sqlite:///{path}") as log:
        return [e.uid for e in log.history("monitor:1")]


def test_a_committed_transaction_leaves_exactly_one_event(db_path: Path) -> None:
    conn = _app(db_path)
    with conn:
        conn.execute("INSERT INTO monitor VALUES (1, 'https://a')")
        event = emit(conn, EVENT)
    assert _stored(db_path) == [event.uid]
    assert conn.execute("SELECT url FROM monitor").fetchall() == [("https://a",)]


def test_a_rolled_back_transaction_leaves_no_event(db_path: Path) -> None:
    conn = _app(db_path)
    with pytest.raises(RuntimeError), conn:
        conn.execute("INSERT INTO monitor VALUES (1, 'https://a')")
        emit(conn, EVENT)
        raise RuntimeError("the change failed after the event was written")
    assert conn.execute("SELECT count(*) FROM monitor").fetchone() == (0,)
    assert _stored(db_path) == []


def test_emit_before_the_change_joins_the_same_transaction(db_path: Path) -> None:
    conn = _app(db_path)
    emit(conn, EVENT)  # no DML yet: emit opens the transaction the change then joins
    conn.execute("INSERT INTO monitor VALUES (1, 'https://a')")
    conn.rollback()
    assert _stored(db_path) == []
    assert conn.execute("SELECT count(*) FROM monitor").fetchone() == (0,)


def test_an_invalid_event_raises_before_anything_is_written(db_path: Path) -> None:
    conn = _app(db_path)
    with pytest.raises(AuditValidationError, match="action"), conn:
        conn.execute("INSERT INTO monitor VALUES (1, 'https://a')")
        emit(conn, {"id": "monitor:1", "action": "not an action"})
    assert conn.execute("SELECT count(*) FROM monitor").fetchone() == (0,)


def test_autocommit_without_a_transaction_is_refused(db_path: Path) -> None:
    conn = _app(db_path, isolation_level=None)
    with pytest.raises(AuditError, match="open transaction"):
        emit(conn, EVENT)
    conn.execute("BEGIN")
    emit(conn, EVENT)
    conn.execute("ROLLBACK")
    assert _stored(db_path) == []


def test_the_tables_emit_creates_are_the_stores_tables(tmp_path: Path) -> None:
    emitted, opened = tmp_path / "emitted.db", tmp_path / "opened.db"
    conn = _app(emitted)
    with conn:
        emit(conn, EVENT)
    SQLiteStore(opened).close()
    schema = "SELECT type, name, sql FROM sqlite_master WHERE name NOT IN ('monitor') ORDER BY name"
    a = sqlite3.connect(emitted).execute(schema).fetchall()
    b = sqlite3.connect(opened).execute(schema).fetchall()
    assert a == b
    assert any(name == "audit_log" for _, name, _ in a)


def test_emitted_events_are_read_like_published_ones(db_path: Path) -> None:
    conn = _app(db_path)
    with conn:
        emit(conn, {**EVENT, "targets": [{"id": "1", "type": "monitor"}], "workspace": "acme"})
    with AuditLog(f"sqlite:///{db_path}", workspace="acme") as log:
        [event] = log.list(target_type="monitor", target_id="1").events
        assert event.metadata == EVENT["metadata"]
        assert log.revision("monitor:1") == 1


def test_emit_through_a_sqlalchemy_session(db_path: Path) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from sqlalchemy.orm import Session

    engine = sqlalchemy.create_engine(f"sqlite:///{db_path}")
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE monitor (id INTEGER PRIMARY KEY, url TEXT)")
    with Session(engine) as session, session.begin():
        session.execute(sqlalchemy.text("INSERT INTO monitor VALUES (1, 'https://a')"))
        kept = emit(session, EVENT)
    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        session.execute(sqlalchemy.text("INSERT INTO monitor VALUES (2, 'https://b')"))
        emit(session, EVENT)
        raise RuntimeError("rolled back")
    with Session(engine) as session:  # emit first, then the change, then a rollback
        emit(session, EVENT)
        session.execute(sqlalchemy.text("INSERT INTO monitor VALUES (3, 'https://c')"))
        session.rollback()
    engine.dispose()
    assert _stored(db_path) == [kept.uid]
    assert sqlite3.connect(db_path).execute("SELECT id FROM monitor").fetchall() == [(1,)]
