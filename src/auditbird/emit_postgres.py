"""``auditbird.emit`` on PostgreSQL: the audit row in the application's own transaction.

    with psycopg.connect(url) as conn:                        # commits or rolls back as a whole
        conn.execute("UPDATE monitor SET url = %s WHERE id = 1", (url,))
        auditbird.emit(conn, {"id": "monitor:1", "action": "monitor.updated", ...})

    with Session(engine) as session, session.begin():         # postgresql+psycopg://...
        session.add(monitor)
        auditbird.emit(session, {...})

The row is written with the PostgreSQL store's own statement
(:func:`auditbird.stores.postgres_write.write_rows`), so it gets its position the same way: the
``audit_log`` table lock is taken at the emit and held until the application commits or rolls
back. Keep such transactions short: writers of audit rows queue on that lock.

Personal fields are sealed as ``publish`` seals them (docs/erasure.md), under the subject keys
the PostgreSQL store keeps in the same database; a key made for the event is made in the same
transaction, so it commits or rolls back with it.
"""

from __future__ import annotations

import weakref
from typing import Any

from ._errors import AuditError, StoreUnavailable, UnsupportedOperation
from .codec import encode
from .event import Event

__all__ = ["postgres_connection", "write_event"]

# Connections whose database already had the current schema: one query less per emit.
_READY: weakref.WeakSet[Any] = weakref.WeakSet()


def postgres_connection(connection: Any) -> Any | None:
    """The psycopg 3 connection behind ``connection`` if it is one (or a SQLAlchemy
    Session/Connection on PostgreSQL); None for anything else."""
    module = type(connection).__module__
    if module.startswith("psycopg2"):  # pragma: no cover - psycopg2 is not a dependency
        raise _psycopg2()
    if module.startswith("psycopg"):
        return connection
    if not module.startswith("sqlalchemy"):
        return None
    from sqlalchemy.orm import Session  # importable: `connection` comes from sqlalchemy

    conn = connection.connection() if isinstance(connection, Session) else connection
    if conn.dialect.name != "postgresql":
        return None
    driver = conn.connection.driver_connection
    if type(driver).__module__.partition(".")[0] != "psycopg":
        raise _psycopg2()
    return driver


def _psycopg2() -> UnsupportedOperation:
    return UnsupportedOperation(
        "emit on PostgreSQL writes through psycopg 3: use the URL postgresql+psycopg://... for "
        "SQLAlchemy (pip install 'auditbird[postgres]')"
    )


def write_event(conn: Any, event: Event) -> None:
    """Insert the (validated) event in ``conn``'s transaction, creating the tables if missing."""
    import psycopg
    from psycopg.pq import TransactionStatus

    from .erasure.keys_postgres import TransactionKeys
    from .erasure.seal import seal_row
    from .stores.postgres_schema import SCHEMA_VERSION, migrate, schema_version
    from .stores.postgres_write import write_rows

    status = conn.info.transaction_status
    if status == TransactionStatus.INERROR:
        raise AuditError("emit: this transaction already failed; roll it back first")
    if conn.autocommit and status == TransactionStatus.IDLE:
        raise AuditError(
            "emit needs an open transaction, and this connection is in autocommit mode with none: "
            "use `with conn.transaction():`, so the event commits or rolls back with your change"
        )
    try:
        if conn not in _READY:
            if schema_version(conn) != SCHEMA_VERSION:
                migrate(conn)
            elif not _migrated_in_this_transaction(conn):
                _READY.add(conn)  # tables made in this transaction could still roll back
        # Personal fields sealed as publish does, under keys made in this same transaction.
        write_rows(conn, [seal_row(event, encode(event), TransactionKeys(conn))])
    except psycopg.Error as exc:
        raise StoreUnavailable(
            f"emit could not write the audit event: {exc}; roll the transaction back"
        ) from exc


def _migrated_in_this_transaction(conn: Any) -> bool:
    """Whether this open transaction wrote the schema version (an earlier emit in it made or
    upgraded the tables): a rollback would undo them, so they must not be remembered yet.
    The row's ``xmin`` against this transaction's id (NULL, so not this one, before it wrote
    anything). A migration inside a savepoint has a subtransaction's id and reads as older."""
    found = conn.execute(
        "SELECT xmin::text::bigint = txid_current_if_assigned() % 4294967296 "
        "FROM auditbird_meta WHERE key = 'schema_version'"
    ).fetchone()
    return bool(found and found[0])
