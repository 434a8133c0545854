"""``auditbird.emit`` inside the application's own PostgreSQL transaction, with psycopg and
with a SQLAlchemy session: the event commits and rolls back with the change it describes."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

import auditbird
from auditbird import AuditError, AuditLog, AuditValidationError


@pytest.fixture
def app_db(postgres_url: str) -> str:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE monitor (id int PRIMARY KEY, url text NOT NULL)")
        conn.execute("INSERT INTO monitor VALUES (1, 'https://old.example')")
    return postgres_url


def monitor_url(url: str) -> str:
    with psycopg.connect(url) as conn:
        (value,) = conn.execute("SELECT url FROM monitor WHERE id = 1").fetchone()
    return str(value)


def events(url: str) -> list[Any]:
    with AuditLog(url) as log:
        return log.list(limit=100).events


def changed(url: str) -> dict[str, Any]:
    return {"id": "monitor:1", "action": "monitor.updated", "metadata": {"url": url}}


def test_psycopg_commit_stores_the_change_and_its_event(app_db: str) -> None:
    with psycopg.connect(app_db) as conn:  # psycopg's context manager commits on success
        conn.execute("UPDATE monitor SET url = %s WHERE id = 1", ("https://new.example",))
        stored = auditbird.emit(conn, changed("https://new.example"))
    assert monitor_url(app_db) == "https://new.example"
    assert [e.uid for e in events(app_db)] == [stored.uid]


def test_psycopg_rollback_drops_the_change_and_its_event(app_db: str) -> None:
    with psycopg.connect(app_db) as conn:
        with pytest.raises(RuntimeError), conn.transaction():
            conn.execute("UPDATE monitor SET url = 'https://rolled.back' WHERE id = 1")
            auditbird.emit(conn, changed("https://rolled.back"))
            raise RuntimeError("the application fails after the emit")
        conn.rollback()
    assert monitor_url(app_db) == "https://old.example"
    assert events(app_db) == []


def test_the_first_emit_creates_the_tables_in_the_transaction_and_a_rollback_drops_them(
    postgres_url: str,
) -> None:
    with psycopg.connect(postgres_url) as conn:
        auditbird.emit(conn, changed("x"))
        conn.rollback()
        (exists,) = conn.execute("SELECT to_regclass('audit_log') IS NOT NULL").fetchone()
        assert exists is False
        auditbird.emit(conn, changed("y"))  # and the next emit creates them again
        conn.commit()
    assert [e.metadata["url"] for e in events(postgres_url)] == ["y"]


def test_an_autocommit_connection_outside_a_transaction_is_refused(app_db: str) -> None:
    with psycopg.connect(app_db, autocommit=True) as conn:
        with pytest.raises(AuditError, match="open transaction"):
            auditbird.emit(conn, changed("x"))
        with conn.transaction():  # inside an explicit transaction it joins
            auditbird.emit(conn, changed("y"))
    assert len(events(app_db)) == 1


def test_an_invalid_event_writes_nothing_and_the_transaction_goes_on(app_db: str) -> None:
    with psycopg.connect(app_db) as conn:
        conn.execute("UPDATE monitor SET url = 'https://kept' WHERE id = 1")
        with pytest.raises(AuditValidationError):
            auditbird.emit(conn, {"id": "", "action": "not an action"})
        auditbird.emit(conn, changed("https://kept"))
    assert monitor_url(app_db) == "https://kept"
    assert len(events(app_db)) == 1


def test_emitted_events_get_positions_a_follower_sees(app_db: str) -> None:
    with psycopg.connect(app_db) as conn:
        for n in range(3):
            auditbird.emit(conn, changed(f"u{n}"))
            conn.commit()
    with AuditLog(app_db) as log:
        seen = [(r.position, r.event.metadata["url"]) for r in log.follow(idle_timeout=0)]
    assert seen == [(1, "u0"), (2, "u1"), (3, "u2")]


sqlalchemy = pytest.importorskip("sqlalchemy")


def _engine(url: str) -> Any:
    return sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def test_sqlalchemy_session_commit_stores_the_change_and_its_event(app_db: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    engine = _engine(app_db)
    with Session(engine) as session, session.begin():
        session.execute(text("UPDATE monitor SET url = 'https://orm.example' WHERE id = 1"))
        stored = auditbird.emit(session, changed("https://orm.example"))
    engine.dispose()
    assert monitor_url(app_db) == "https://orm.example"
    assert [e.uid for e in events(app_db)] == [stored.uid]


def test_sqlalchemy_session_rollback_drops_the_change_and_its_event(app_db: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    engine = _engine(app_db)
    with Session(engine) as session:
        session.execute(text("UPDATE monitor SET url = 'https://gone' WHERE id = 1"))
        auditbird.emit(session, changed("https://gone"))
        session.rollback()
    engine.dispose()
    assert monitor_url(app_db) == "https://old.example"
    assert events(app_db) == []
