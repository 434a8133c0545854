"""The service's keys in a small SQLite file on this machine (``KeyStore("audit.keys.db")``).

The file (mode 0600, :mod:`.private_files`) holds the keys' hashes, the idempotency records and
the viewer-link secret; the uid secret is a 0600 file beside it (``audit.keys.secret``). Every
``--workers`` process and ``auditbird keys`` open the same file. A revoke by another process is
seen on the next request: every verify ``stat``s the file's WAL, which any commit changes.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path

from .keys import IDEMPOTENCY_TTL_MS, ApiKey, KeyRow, KeyStore, link_key
from .private_files import connect_private, load_or_create_secret, secret_path_for

__all__ = ["SqliteKeyStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_key (
    key_id     TEXT PRIMARY KEY,
    hash       TEXT NOT NULL,            -- sha256(secret), hex; the secret itself is never stored
    workspace  TEXT NOT NULL,
    scope      TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    name       TEXT NOT NULL DEFAULT '',
    rate       REAL,                     -- requests per second; NULL: the server's default
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS idempotency (
    workspace   TEXT NOT NULL,
    key         TEXT NOT NULL,
    request     TEXT NOT NULL,           -- sha256 of the request body: same key, other body -> 422
    status      INTEGER NOT NULL,
    body        BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (workspace, key)
);
CREATE TABLE IF NOT EXISTS viewer_link_secret (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    secret     TEXT    NOT NULL,       -- HMAC key for viewer links; rotate it to revoke them all
    created_at INTEGER NOT NULL
);
"""


class SqliteKeyStore(KeyStore):
    """API keys (and the service's idempotency records and secrets) in one SQLite file."""

    def __init__(self, path: str | os.PathLike[str], *, cache_seconds: float = 1.0) -> None:
        super().__init__(path, cache_seconds=cache_seconds)
        self.path = Path(path)
        self.where = str(self.path)
        self.label = f"keys file {self.path.name}"
        self._stamp: tuple[int, int] | None = None
        # Hashes only, but nobody else needs to read them (nor the viewer-link secret beside them).
        self._conn = connect_private(self.path)
        self._lock = threading.Lock()
        self._wal = self.path.with_name(self.path.name + "-wal")
        with self._lock:
            self._conn.execute("PRAGMA journal_mode = WAL")
            # Idempotency records hold events as published: what an erasure deletes is zeroed.
            self._conn.execute("PRAGMA secure_delete = ON")
            self._conn.executescript(_SCHEMA)

    # -- keys -------------------------------------------------------------------------------

    def _insert_key(self, key: ApiKey, hashed: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO api_key (key_id, hash, workspace, scope, name, rate, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key.key_id, hashed, key.workspace, key.scope, key.name, key.rate, key.created_at),
            )

    def _fetch_key(self, key_id: str) -> KeyRow | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT key_id, workspace, scope, name, rate, created_at, revoked_at, hash "
                "FROM api_key WHERE key_id = ?",
                (key_id,),
            ).fetchone()
        return tuple(row) if row is not None else None

    def _revoke_key(self, key_id: str, at: int) -> bool:
        with self._lock:
            cur = self._conn.execute(
                "UPDATE api_key SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (at, key_id)
            )
        return cur.rowcount == 1

    def _changed_elsewhere(self) -> bool:
        stamp = self._file_stamp()
        changed, self._stamp = stamp != self._stamp, stamp
        return changed

    def _file_stamp(self) -> tuple[int, int]:
        """Size and mtime of the key file's WAL (the main file if there is none): a commit by
        any connection appends to the WAL, so it changes one or both. One ``stat`` a request."""
        try:
            st = os.stat(self._wal)
        except OSError:
            try:
                st = os.stat(self.path)
            except OSError:
                return (0, 0)
        return (st.st_mtime_ns, st.st_size)

    def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        sql = "SELECT key_id, workspace, scope, name, rate, created_at, revoked_at FROM api_key"
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL"
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created_at, key_id").fetchall()
        return [ApiKey(*r) for r in rows]

    # -- idempotency records ----------------------------------------------------------------

    def idempotent_get(self, workspace: str, key: str) -> tuple[str, int, bytes] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT request, status, body FROM idempotency WHERE workspace = ? AND key = ?",
                (workspace, key),
            ).fetchone()
        return (row[0], row[1], bytes(row[2])) if row else None

    def idempotent_put(
        self, workspace: str, key: str, request: str, status: int, body: bytes
    ) -> tuple[str, int, bytes]:
        now = int(time.time() * 1000)
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO idempotency (workspace, key, request, status, body, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (workspace, key, request, status, body, now),
            )
            # Prune a few old ones on each write.
            self._conn.execute(
                "DELETE FROM idempotency WHERE rowid IN "
                "(SELECT rowid FROM idempotency WHERE created_at < ? LIMIT 100)",
                (now - IDEMPOTENCY_TTL_MS,),
            )
        found = self.idempotent_get(workspace, key)
        assert found is not None
        return found

    def forget_idempotency(self, workspace: str) -> int:
        with self._lock:
            cur = self._conn.execute("DELETE FROM idempotency WHERE workspace = ?", (workspace,))
            # The WAL still holds the pages as they were: copy the zeroed ones back and empty it
            # (busy while another process reads an old snapshot; its next commit reuses the WAL).
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return cur.rowcount

    # -- secrets ----------------------------------------------------------------------------

    def server_secret(self) -> bytes:
        return load_or_create_secret(secret_path_for(self.path))

    def link_secret(self) -> bytes:
        # Read on every use (a primary-key look-up): a rotation by `auditbird keys` takes effect
        # in a running server at once.
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO viewer_link_secret (id, secret, created_at) VALUES (1, ?, ?)",
                (secrets.token_urlsafe(32), int(time.time() * 1000)),
            )
            (secret,) = self._conn.execute("SELECT secret FROM viewer_link_secret WHERE id = 1").fetchone()
        return link_key(str(secret))

    def rotate_link_secret(self) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO viewer_link_secret (id, secret, created_at) VALUES (1, ?, ?)",
                (secrets.token_urlsafe(32), int(time.time() * 1000)),
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
