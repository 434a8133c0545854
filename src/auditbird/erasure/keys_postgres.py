"""Subject keys in PostgreSQL, for logs (and the service) on the PostgreSQL store.

The same contract as :class:`~auditbird.erasure.keys.SubjectKeys`, in two tables beside the
events' (``auditbird_subject_keys``, ``auditbird_subject_erasures``). Nothing is cached: every
lookup asks the database, so an erasure by any process holds for the next read everywhere.

PostgreSQL has no ``secure_delete``: a deleted row stays in the table's free space until it is
overwritten. After an erasure the keys table is rewritten (``VACUUM FULL``, a small table) so
the destroyed key is in no live file; the write-ahead log, its archives and base backups still
hold it until they expire (docs/erasure.md). Keys in the events' database also share its
backups: keep the SQLite key file instead when that matters.
"""

from __future__ import annotations

import secrets
import threading
import time
import weakref
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["PostgresSubjectKeys", "TransactionKeys"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS auditbird_subject_keys (
    kid TEXT PRIMARY KEY,
    workspace TEXT NOT NULL,
    subject TEXT NOT NULL,
    key BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE (workspace, subject)
);
CREATE TABLE IF NOT EXISTS auditbird_subject_erasures (
    kid TEXT PRIMARY KEY,
    workspace TEXT NOT NULL,
    subject TEXT NOT NULL,
    erased_ms BIGINT NOT NULL
);
"""


_SELECT = "SELECT kid, key FROM auditbird_subject_keys WHERE workspace = %s AND subject = %s"
_INSERT = (
    "INSERT INTO auditbird_subject_keys (kid, workspace, subject, key, created_ms) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (workspace, subject) DO NOTHING"
)


def _new_key(workspace: str, subject: str) -> tuple[str, str, str, bytes, int]:
    return (
        secrets.token_urlsafe(12),
        workspace,
        subject,
        secrets.token_bytes(32),
        time.time_ns() // 1_000_000,
    )


def _key_for(conn: Any, workspace: str, subject: str) -> tuple[str, AESGCM]:
    row = conn.execute(_SELECT, (workspace, subject)).fetchone()
    if row is None:
        # Two writers making the first key at once: one insert wins, both read it back.
        conn.execute(_INSERT, _new_key(workspace, subject))
        row = conn.execute(_SELECT, (workspace, subject)).fetchone()
    return str(row[0]), AESGCM(bytes(row[1]))


class PostgresSubjectKeys:
    """Per-subject data keys in the PostgreSQL database at ``url``. Thread-safe."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._lock = threading.RLock()

    def _open(self) -> Any:
        if self._conn is None or self._conn.closed:
            import psycopg

            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('auditbird_subject_keys'))")
                conn.execute(_SCHEMA)
            self._conn = conn
            weakref.finalize(self, conn.close)  # a dropped, unclosed key store lets go of it
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def key_for(self, workspace: str, subject: str) -> tuple[str, AESGCM]:
        """``(kid, cipher)`` of ``subject`` in ``workspace``, its key made on first use."""
        with self._lock:
            return _key_for(self._open(), workspace, subject)

    def lookup(self, kid: str) -> tuple[str, AESGCM] | None:
        with self._lock:
            row = (
                self._open()
                .execute("SELECT workspace, key FROM auditbird_subject_keys WHERE kid = %s", (kid,))
                .fetchone()
            )
            return None if row is None else (str(row[0]), AESGCM(bytes(row[1])))

    def has_subject(self, workspace: str, subject: str) -> bool:
        with self._lock:
            row = (
                self._open()
                .execute(
                    "SELECT 1 FROM auditbird_subject_keys WHERE workspace = %s AND subject = %s",
                    (workspace, subject),
                )
                .fetchone()
            )
            return row is not None

    def destroy(self, workspace: str, subject: str) -> int:
        with self._lock:
            conn = self._open()
            with conn.transaction():
                kids = [
                    str(r[0])
                    for r in conn.execute(
                        "DELETE FROM auditbird_subject_keys WHERE workspace = %s AND subject = %s "
                        "RETURNING kid",
                        (workspace, subject),
                    ).fetchall()
                ]
                for kid in kids:
                    conn.execute(
                        "INSERT INTO auditbird_subject_erasures (kid, workspace, subject, erased_ms) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (kid) DO NOTHING",
                        (kid, workspace, subject, time.time_ns() // 1_000_000),
                    )
            if kids:
                conn.execute("VACUUM FULL auditbird_subject_keys")  # the dead row leaves every live file
            return len(kids)


class TransactionKeys:
    """Subject keys read and made in the caller's open transaction (``auditbird.emit`` on a
    psycopg connection): a key made for an event commits or rolls back with that event, and
    the tables are created in that transaction if missing (a rollback drops them too).

    Only :meth:`key_for` (all sealing needs); reads and erasures go through
    :class:`PostgresSubjectKeys`, which sees the same tables."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._ready = False
        self._keys: dict[
            tuple[str, str], tuple[str, AESGCM]
        ] = {}  # per emit: name and fields share a subject

    def key_for(self, workspace: str, subject: str) -> tuple[str, AESGCM]:
        """``(kid, cipher)`` of ``subject`` in ``workspace``, its key made on first use."""
        conn = self._conn
        # Asked once per emit, never remembered per connection: tables an earlier emit made in
        # this transaction are gone if it rolls back. Checked only when a value needs a key.
        if not self._ready:
            if not _has_tables(conn):
                # Held to the caller's commit: a concurrent first emit waits here, then finds them.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('auditbird_subject_keys'))")
                if not _has_tables(conn):
                    conn.execute(_SCHEMA)
            self._ready = True
        found = self._keys.get((workspace, subject))
        if found is None:
            found = self._keys[(workspace, subject)] = _key_for(conn, workspace, subject)
        return found


def _has_tables(conn: Any) -> bool:
    # pg_class through SQL, as postgres_schema checks its tables; asked again after waiting on
    # the lock, as the emit that held it may have made them.
    (found,) = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relname = 'auditbird_subject_erasures' "
        "AND relnamespace = current_schema()::regnamespace)"
    ).fetchone()
    return bool(found)
