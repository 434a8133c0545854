"""``auditbird.emit`` on a PostgreSQL connection seals personal fields like ``publish`` does:
the subject keys are the PostgreSQL store's (``auditbird_subject_keys``, in the same database),
made in the caller's transaction, so the key commits or rolls back with the event it seals."""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
import pytest
from pydantic import BaseModel

import auditbird
from auditbird import ActionRegistry, AuditLog, Personal, action
from auditbird.erasure import ERASED, erase_subject

ADA, ADA_MAIL = "Ada Lovelace", "ada@example.org"


def _registry() -> ActionRegistry:
    reg = ActionRegistry()

    @action("user.invited", registry=reg)
    class UserInvited(BaseModel):
        email: Annotated[str, Personal()]
        plan: str = "free"

    return reg


def _invited(actor_id: str = "42") -> dict[str, Any]:
    return {
        "id": "org:1",
        "action": "user.invited",
        "actor": {"id": actor_id, "name": ADA},
        "metadata": {"email": ADA_MAIL, "plan": "pro"},
    }


def _stored(url: str) -> str:
    with psycopg.connect(url) as conn:
        return " ".join(str(r) for r in conn.execute("SELECT actor, metadata FROM audit_log").fetchall())


def _subjects(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('auditbird_subject_keys')").fetchone() == (None,):
            return []
        return sorted(r[0] for r in conn.execute("SELECT subject FROM auditbird_subject_keys"))


def _read_then_erase(url: str, reg: ActionRegistry, uid: str) -> None:
    with AuditLog(url, registry=reg) as log:
        event = log.get(uid)
        assert (event.actor.name, event.metadata.email, event.metadata.plan) == (ADA, ADA_MAIL, "pro")
        erase_subject(log, "user:42")
        event = log.get(uid)
        assert (event.actor.name, event.metadata.email, event.metadata.plan) == (ERASED, ERASED, "pro")
    assert _subjects(url) == []


def test_psycopg_emit_stores_ciphertext_reads_decrypt_and_erase_holds(postgres_url: str) -> None:
    reg = _registry()
    with psycopg.connect(postgres_url) as conn:  # commits on leaving the block
        uid = auditbird.emit(conn, _invited(), registry=reg).uid
    raw = _stored(postgres_url)
    assert ADA not in raw and ADA_MAIL not in raw and "$erasable:v1:" in raw and "pro" in raw
    assert _subjects(postgres_url) == ["user:42"]
    _read_then_erase(postgres_url, reg, uid)


def test_the_key_rolls_back_with_the_event(postgres_url: str) -> None:
    reg = _registry()
    with AuditLog(postgres_url, registry=reg) as log:  # the tables exist beforehand
        log.publish_audit_log(_invited("7"))
    with psycopg.connect(postgres_url) as conn:
        auditbird.emit(conn, _invited("42"), registry=reg)
        conn.rollback()
    assert _subjects(postgres_url) == ["user:7"]
    with AuditLog(postgres_url, registry=reg) as log:
        assert [e.actor.id for e in log.list().events] == ["7"]


def test_the_first_emit_creates_the_key_tables_in_the_transaction(postgres_url: str) -> None:
    reg = _registry()
    with psycopg.connect(postgres_url) as conn:
        auditbird.emit(conn, _invited(), registry=reg)
        conn.rollback()
        assert conn.execute("SELECT to_regclass('auditbird_subject_keys')").fetchone() == (None,)
        uid = auditbird.emit(conn, _invited(), registry=reg).uid
        conn.commit()
    assert ADA not in _stored(postgres_url)
    _read_then_erase(postgres_url, reg, uid)


sqlalchemy = pytest.importorskip("sqlalchemy")


def test_sqlalchemy_session_emit_seals_too(postgres_url: str) -> None:
    from sqlalchemy.orm import Session

    reg = _registry()
    engine = sqlalchemy.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with Session(engine) as session, session.begin():
        uid = auditbird.emit(session, _invited(), registry=reg).uid
    engine.dispose()
    raw = _stored(postgres_url)
    assert ADA not in raw and ADA_MAIL not in raw and "$erasable:v1:" in raw
    _read_then_erase(postgres_url, reg, uid)


def test_two_emits_then_a_rollback_leave_the_connection_usable(postgres_url: str) -> None:
    # The tables the first emit made in the transaction are gone after the rollback: the
    # second emit must not have remembered them as there for the next transaction.
    reg = _registry()
    with psycopg.connect(postgres_url) as conn:
        auditbird.emit(conn, _invited(), registry=reg)
        auditbird.emit(conn, _invited(), registry=reg)
        conn.rollback()
        uid = auditbird.emit(conn, _invited(), registry=reg).uid
        conn.commit()
    _read_then_erase(postgres_url, reg, uid)


def test_two_first_emits_at_once_make_the_key_tables_once(postgres_url: str) -> None:
    import threading

    reg = _registry()
    with AuditLog(postgres_url, registry=reg) as log:  # the events' tables, and no key tables yet
        log.publish_audit_log({"id": "org:1", "action": "org.created"})
    assert _subjects(postgres_url) == []
    with psycopg.connect(postgres_url) as first, psycopg.connect(postgres_url) as second:
        auditbird.emit(first, _invited("42"), registry=reg)  # makes the key tables, holds the lock
        pid = second.info.backend_pid
        done: list[object] = []
        worker = threading.Thread(
            target=lambda: done.append(auditbird.emit(second, _invited("43"), registry=reg).uid)
        )
        worker.start()
        waiting: list[str] = []
        with psycopg.connect(postgres_url, autocommit=True) as watch:
            # Commit only once the second emit waits on the first (any lock: a regression that
            # waits elsewhere must fail below, not hang here).
            while worker.is_alive() and not waiting:
                waiting = [
                    r[0]
                    for r in watch.execute(
                        "SELECT locktype FROM pg_locks WHERE pid = %s AND NOT granted", (pid,)
                    ).fetchall()
                ]
                watch.execute("SELECT pg_sleep(0.02)")
        first.commit()
        worker.join(60)
        assert len(done) == 1, "the second emit failed (see the thread's traceback)"
        assert waiting == ["advisory"]  # it waited on the key tables' lock, the path under test
        second.commit()
    assert _subjects(postgres_url) == ["user:42", "user:43"]
    assert ADA not in _stored(postgres_url)
