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

from .._errors import AuditError, StoreUnavailable, UnsupportedOperation
from ..stores import redact_url
from ..stores.postgres_schema import apply_migrations, schema_version
from .keys import _IN_MEMORY_ONLY, KeyNotInMemory

__all__ = ["PostgresSubjectKeys", "TransactionKeys", "MIGRATIONS"]

#: The key tables, versioned by the event store's runner (``apply_migrations``) in their own
#: meta table. ``IF NOT EXISTS``: databases from before the versioning have the tables already.
MIGRATIONS: list[str] = [
    """
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
""",
]
_META = "auditbird_subject_keys_meta"
# pg_advisory_xact_lock key ("absubk"), apart from the event store's and the service keys'.
_MIGRATION_LOCK = 0x61627375626B


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
            try:
                with conn.transaction():
                    _ensure_schema(conn, redact_url(self.url))
            except BaseException:
                conn.close()
                raise
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
        if _IN_MEMORY_ONLY.get():  # nothing is kept in memory here: always a round trip
            raise KeyNotInMemory(subject)
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
        """Delete the subject's keys, then rewrite the table (``VACUUM FULL``) so no live file
        keeps them. Refused, nothing changed, for a role that cannot rewrite it (only the
        table's owner can: PostgreSQL would skip it with a warning, leaving the key's bytes)."""
        with self._lock:
            conn = self._open()
            (owner, may) = conn.execute(
                "SELECT pg_get_userbyid(relowner), pg_has_role(relowner, 'USAGE') FROM pg_class "
                "WHERE oid = 'auditbird_subject_keys'::regclass"
            ).fetchone()
            if not may:
                raise UnsupportedOperation(
                    f"role {conn.info.user!r} does not own auditbird_subject_keys (owner: {owner!r}), so "
                    "it cannot rewrite the table after deleting a key and the key's bytes would stay in "
                    "its file: nothing erased; erase as the owner (auditbird erase with its URL), or "
                    f"GRANT {owner} TO {conn.info.user}"
                )
            before = _filenode(conn)
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
                if _filenode(conn) == before:  # skipped (with only a WARNING), e.g. ownership changed
                    raise AuditError(
                        f"{subject}'s key was deleted (its events read as [erased]), but the keys table "
                        "was not rewritten, so the key's bytes stay in its file until reused: run "
                        "VACUUM FULL auditbird_subject_keys as its owner"
                    )
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
            # In the caller's transaction: tables it creates commit or roll back with the event;
            # a concurrent first emit waits on the runner's lock until then.
            _ensure_schema(conn, "the database")
            self._ready = True
        found = self._keys.get((workspace, subject))
        if found is None:
            found = self._keys[(workspace, subject)] = _key_for(conn, workspace, subject)
        return found


def _filenode(conn: Any) -> int:
    (node,) = conn.execute("SELECT pg_relation_filenode('auditbird_subject_keys')").fetchone()
    return int(node)


def _ensure_schema(conn: Any, where: str) -> None:
    """The key tables at ``len(MIGRATIONS)``, by the shared versioned runner: one query when
    current, so a role with rights on the tables but no CREATE on the schema works once the
    owner created them. Tables made before the versioning (no meta table) by a role that could
    are used as they are when this role may not record the version."""

    def denied(current: int, message: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"{where} has no auditbird subject-key tables (version {current}, needs {len(MIGRATIONS)}) "
            f"and this role may not create them ({message}): publish once as the database owner "
            "to create them, or GRANT CREATE ON SCHEMA public to this role"
        )

    def too_new(current: int) -> StoreUnavailable:
        return StoreUnavailable(
            f"{where} has auditbird subject-key tables of schema version {current}, newer than this "
            f"auditbird understands ({len(MIGRATIONS)}); upgrade auditbird (pip install -U auditbird)"
        )

    try:
        with conn.transaction():  # a savepoint inside the caller's transaction
            apply_migrations(
                conn, MIGRATIONS, meta=_META, lock=_MIGRATION_LOCK, too_new=too_new, denied=denied
            )
    except StoreUnavailable:
        # Rolled back to the savepoint: tables from before the versioning serve as they are.
        if schema_version(conn, meta=_META) == 0 and _has_tables(conn):
            return
        raise


def _has_tables(conn: Any) -> bool:
    # pg_class through SQL, as postgres_schema checks its tables; asked again after waiting on
    # the lock, as the emit that held it may have made them.
    (found,) = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relname = 'auditbird_subject_erasures' "
        "AND relnamespace = current_schema()::regnamespace)"
    ).fetchone()
    return bool(found)
