"""API keys: ``ab_<id>_<secret>``, stored only as a SHA-256 of the secret, in a local SQLite file.

The key store is deliberately not the event store: events may live in Tinybird, keys never
leave the machine that serves them. For ``sqlite:///path/audit.db`` the keys live beside it in
``path/audit.keys.db``; for any other store in ``./auditbird.keys.db``. ``AUDITBIRD_KEYS`` (or
``--keys``) names another file. ``auditbird keys`` and ``auditbird serve`` resolve it the same way.

>>> keys = KeyStore("audit.keys.db")
>>> created = keys.create(workspace="acme", scope="read")
>>> keys.verify(created.secret).workspace
'acme'

Verified keys are cached (a ``cachetools.TTLCache``) for ``cache_seconds`` (default 1 s) so
that a request costs no SQLite look-up: the cache holds each key's row (with the secret's hash,
never the secret) and every request still hashes the presented secret and compares it in
constant time. A key revoked through this store is dropped from its cache at once; a key
revoked by another process (``auditbird keys revoke``) stops working as soon as the key file
is seen to change (checked on every request with one ``stat``), and in any case within
``cache_seconds``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from cachetools import TTLCache

from .private_files import connect_private

__all__ = ["ApiKey", "CreatedKey", "KeyStore", "Scope", "SCOPES", "keys_path_for"]

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")
PREFIX = "ab"

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
"""


def keys_path_for(store_url: str) -> Path:
    """Where the keys of the service over ``store_url`` live (see the module docstring)."""
    explicit = os.environ.get("AUDITBIRD_KEYS")
    if explicit:
        return Path(explicit)
    if store_url.startswith("sqlite:"):
        path = urlsplit(store_url).path
        path = path[1:] if path.startswith("/") else path
        if path and path != ":memory:":
            db = Path(path)
            return db.with_name(db.stem + ".keys.db")
    return Path("auditbird.keys.db")


@dataclass(frozen=True)
class ApiKey:
    """What a key grants: a workspace and a scope. Never holds the secret."""

    key_id: str
    workspace: str
    scope: Scope
    name: str = ""
    rate: float | None = None
    created_at: int = 0
    revoked_at: int | None = None

    @property
    def can_read(self) -> bool:
        return self.scope in ("read", "admin")

    @property
    def can_write(self) -> bool:
        return self.scope in ("write", "admin")


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    secret: str  # the full ``ab_<id>_<secret>`` token: shown once, then only its hash exists


# Compared against when a key id is unknown: the hex form of a SHA-256 no secret produces in practice.
_NO_KEY_HASH = hashlib.sha256(b"auditbird: no such key").hexdigest()


_MISSING = object()  # a cache miss (None is a cached answer: "no such key")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """API keys (and the service's idempotency records) in one small SQLite file.

    ``cache_seconds``: how long a verified key's row may be reused without reading the file
    again (0: read it on every request). It bounds how late a revoke from another process
    takes effect.
    """

    def __init__(self, path: str | os.PathLike[str], *, cache_seconds: float = 1.0) -> None:
        self.path = Path(path)
        self.cache_seconds = cache_seconds
        # key_id -> row as ApiKey fields + hash (None for an unknown id), for cache_seconds.
        # Rows only, never a secret; at most 10,000 (least recently used go first).
        self._cache: TTLCache[str, tuple[Any, ...] | None] | None = (
            TTLCache(maxsize=10_000, ttl=cache_seconds) if cache_seconds > 0 else None
        )
        self._cache_lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        # Hashes only, but nobody else needs to read them (nor the viewer-link secret beside them).
        self._conn = connect_private(self.path)
        self._lock = threading.Lock()
        self._wal = self.path.with_name(self.path.name + "-wal")
        with self._lock:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.executescript(_SCHEMA)

    # -- keys -----------------------------------------------------------------------------

    def create(self, *, workspace: str, scope: str, name: str = "", rate: float | None = None) -> CreatedKey:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        if rate is not None and rate < 0:
            raise ValueError("rate must be >= 0 requests per second (0: unlimited)")
        if len(workspace) > 128 or not re.fullmatch(r"[A-Za-z0-9_.:@/+=-]*", workspace):
            # The same rule as an event's workspace: a key for a name no event can carry is useless.
            raise ValueError(
                f"workspace {workspace!r} may contain only letters, digits and _.:@/+=- (128 at most)"
            )
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        token = f"{PREFIX}_{key_id}_{secret}"
        created = int(time.time() * 1000)
        with self._lock:
            self._conn.execute(
                "INSERT INTO api_key (key_id, hash, workspace, scope, name, rate, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key_id, _hash(secret), workspace, scope, name, rate, created),
            )
        self._forget(key_id)
        key = ApiKey(key_id, workspace, cast(Scope, scope), name, rate, created)
        return CreatedKey(key, token)

    def verify(self, token: str) -> ApiKey | None:
        """The key a bearer token names, if the secret matches and it is not revoked."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
            return None
        row = self._row(parts[1])
        # Hash and compare even when the id is unknown (against a hash no secret has), and look
        # unknown ids up through the same cache as known ones: the same work either way, so
        # timing says nothing about which ids exist.
        stored = row[7] if row else _NO_KEY_HASH
        matches = hmac.compare_digest(_hash(parts[2]), stored)
        if row is None or not matches or row[6] is not None:
            return None
        return ApiKey(*row[:7])

    def _row(self, key_id: str) -> tuple[Any, ...] | None:
        """The key's row: from the cache while fresh and the file unchanged, else from SQLite."""
        if self._cache is not None:
            stamp = self._file_stamp()
            if stamp != self._stamp:  # another process wrote the key file: trust no cached row
                with self._cache_lock:
                    self._cache.clear()
                self._stamp = stamp
            with self._cache_lock:  # TTLCache is not thread-safe; verify may run in threads
                cached = self._cache.get(key_id, _MISSING)
            if cached is not _MISSING:
                return cast("tuple[Any, ...] | None", cached)
        with self._lock:
            row = self._conn.execute(
                "SELECT key_id, workspace, scope, name, rate, created_at, revoked_at, hash "
                "FROM api_key WHERE key_id = ?",
                (key_id,),
            ).fetchone()
        found = tuple(row) if row is not None else None
        if self._cache is not None:  # unknown ids too: the same cost as a known one
            with self._cache_lock:
                self._cache[key_id] = found
        return found

    def _forget(self, key_id: str) -> None:
        if self._cache is not None:
            with self._cache_lock:
                self._cache.pop(key_id, None)

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

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id (``ab_<id>_...``'s id); True if it existed and was live."""
        if key_id.startswith(f"{PREFIX}_"):
            key_id = key_id.split("_", 2)[1]
        with self._lock:
            cur = self._conn.execute(
                "UPDATE api_key SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (int(time.time() * 1000), key_id),
            )
        self._forget(key_id)  # this process stops accepting it at once
        return cur.rowcount == 1

    # -- idempotency records --------------------------------------------------------------

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
        """Record the first answer; a concurrent twin that lost the race gets the winner's."""
        now = int(time.time() * 1000)
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO idempotency (workspace, key, request, status, body, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (workspace, key, request, status, body, now),
            )
            # Records live a day, as Stripe's do; prune a few old ones on each write.
            self._conn.execute(
                "DELETE FROM idempotency WHERE rowid IN "
                "(SELECT rowid FROM idempotency WHERE created_at < ? LIMIT 100)",
                (now - 86_400_000,),
            )
        found = self.idempotent_get(workspace, key)
        assert found is not None
        return found

    def close(self) -> None:
        with self._lock:
            self._conn.close()
