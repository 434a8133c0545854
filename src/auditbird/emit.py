"""Transactional emit: write an audit event inside the caller's own database transaction.

    with sqlite3.connect("app.db") as conn:                 # commits or rolls back as a whole
        conn.execute("UPDATE monitor SET url = ? WHERE id = 1", (url,))
        auditbird.emit(conn, {"id": "monitor:1", "action": "monitor.updated", ...})

The event is validated and encoded by the library (the same code as ``publish_audit_log``)
and inserted with the store's own statements, so the row commits or rolls back with the
change it describes: no change without its event, no event without its change. The
auditbird tables are created in that database (the SQLite store's migrations) if missing.
``auditbird relay`` then ships the committed events to Tinybird or another store.

Fail-closed: an invalid event raises before anything is written (roll your transaction
back), and a connection that is not inside a transaction is refused rather than written
to on its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from ._errors import AuditError, StoreUnavailable, UnsupportedOperation
from .actions import ActionRegistry, default_registry
from .codec import encode
from .emit_postgres import postgres_connection, write_event
from .erasure.erase import keys_for_connection
from .erasure.seal import seal_row
from .event import Event
from .reserved import refuse_reserved
from .stores.sqlite import migrate, write_rows
from .validation import DEFAULT_LIMITS, Limits, validate_event

__all__ = ["emit", "ensure_schema"]


def emit(
    connection: Any,
    event: Mapping[str, Any] | Event,
    *,
    registry: ActionRegistry | None = None,
    strict: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    workspace: str | None = None,
) -> Event:
    """Validate ``event`` and insert it in ``connection``'s open transaction; return it.

    ``connection`` is a :class:`sqlite3.Connection`, a psycopg 3 connection, or a SQLAlchemy
    ``Session``/``Connection`` on SQLite or PostgreSQL. Nothing is committed here: the caller's
    commit or rollback decides.
    """
    stored = validate_event(
        event,
        registry if registry is not None else default_registry,
        strict=strict,
        limits=limits,
        workspace=workspace,
    )
    refuse_reserved((stored.action,))  # auditbird's own records (auditbird.reserved)
    pg = postgres_connection(connection)
    if pg is not None:  # psycopg, or SQLAlchemy on PostgreSQL: emit_postgres.py
        write_event(pg, stored)
        return stored
    conn = _sqlite_connection(connection)
    _join_transaction(conn)
    try:
        ensure_schema(conn)
        row = encode(stored)
        keys = keys_for_connection(conn)  # personal fields sealed, as publish does (auditbird.erasure)
        write_rows(conn, [row if keys is None else seal_row(stored, row, keys)])
    except sqlite3.OperationalError as exc:
        raise StoreUnavailable(
            f"emit could not write the audit event: {exc}; roll the transaction back"
        ) from exc
    return stored


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Bring ``conn``'s database to the SQLite store's schema: the store's own migrations
    (:func:`auditbird.stores.sqlite.migrate`), in the caller's transaction."""
    migrate(conn)


def _sqlite_connection(connection: Any) -> sqlite3.Connection:
    if isinstance(connection, sqlite3.Connection):
        return connection
    module = type(connection).__module__
    if module.startswith("sqlalchemy"):
        return _from_sqlalchemy(connection)
    raise UnsupportedOperation(
        f"emit writes through a sqlite3.Connection or a SQLAlchemy Session, not {type(connection).__name__}"
    )


def _from_sqlalchemy(obj: Any) -> sqlite3.Connection:
    # Session.connection() begins the session's transaction (if it has not) and binds the
    # connection to it; the DBAPI connection underneath is the one that transaction uses.
    from sqlalchemy.orm import Session  # importable: `obj` comes from sqlalchemy

    conn = obj.connection() if isinstance(obj, Session) else obj
    dialect = conn.dialect.name
    if dialect != "sqlite":
        raise UnsupportedOperation(
            f"emit supports SQLite databases; this session is on {dialect!r}. Publish with "
            "AuditLog after commit, or keep the audit table in SQLite"
        )
    driver = conn.connection.driver_connection
    if not isinstance(driver, sqlite3.Connection):
        raise UnsupportedOperation(f"emit needs the sqlite3 driver, not {type(driver).__name__}")
    return driver


def _join_transaction(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        return
    if getattr(conn, "autocommit", None) is True or conn.isolation_level is None:
        raise AuditError(
            "emit needs an open transaction, and this connection is in autocommit mode with none: "
            "execute('BEGIN') first, so the event commits or rolls back with your change"
        )
    # Legacy mode opens a transaction at the next INSERT anyway; opening it now puts the
    # event and the change that follows in the same one.
    conn.execute("BEGIN")
