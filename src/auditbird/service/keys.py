"""API keys: ``ab_<id>_<secret>``, stored only as a SHA-256 of the secret.

:class:`KeyStore` is what the service needs from wherever its keys live: the keys, the
idempotency records, the viewer-link secret and the server secret that keys derived uids. Two
implementations, chosen by the location (as :class:`pathlib.Path` picks its flavour):

- a path: a small SQLite file on this machine (:mod:`.keys_sqlite`);
- a ``postgresql://`` URL: tables in that database (:mod:`.keys_postgres`), so every replica of
  the service over it shares them.

Where the keys of a store live (:func:`keys_location_for`): ``AUDITBIRD_KEYS`` (or ``--keys``)
if set; for a ``postgresql://`` store, the same database; for ``sqlite:///path/audit.db``
``path/audit.keys.db`` beside it; for any other store ``./auditbird.keys.db``. ``auditbird
keys`` and ``auditbird serve`` resolve it the same way.

>>> keys = KeyStore("audit.keys.db")                    # or KeyStore("postgresql://app@db/app")
>>> created = keys.create(workspace="acme", scope="read")
>>> keys.verify(created.secret).workspace
'acme'

Verified keys are cached (a ``cachetools.TTLCache``) for ``cache_seconds`` (default 1 s) so that
a request costs no look-up: the cache holds each key's row (with the secret's hash, never the
secret) and every request still hashes the presented secret and compares it in constant time. A
key revoked through this store is dropped from its cache at once; one revoked elsewhere (another
replica, ``auditbird keys revoke``) stops working within ``cache_seconds``, or sooner where the
backend can tell (the SQLite file's change is seen on the next request).
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

__all__ = [
    "ApiKey",
    "CreatedKey",
    "KeyStore",
    "Scope",
    "SCOPES",
    "keys_location_for",
    "keys_path_for",
    "is_postgres_url",
]

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")
PREFIX = "ab"

#: A key row as the backends return it: the :class:`ApiKey` fields in order, then the hash.
KeyRow = tuple[Any, ...]


def is_postgres_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def keys_location_for(store_url: str) -> Path | str:
    """Where the keys of the service over ``store_url`` live (see the module docstring)."""
    explicit = os.environ.get("AUDITBIRD_KEYS")
    if explicit:
        return explicit if is_postgres_url(explicit) else Path(explicit)
    if is_postgres_url(store_url):
        return store_url  # the same database: every replica over it shares the keys
    if store_url.startswith("sqlite:"):
        path = urlsplit(store_url).path
        path = path[1:] if path.startswith("/") else path
        if path and path != ":memory:":
            db = Path(path)
            return db.with_name(db.stem + ".keys.db")
    return Path("auditbird.keys.db")


#: The name it had when keys could only live in a file; it may now return a PostgreSQL URL.
keys_path_for = keys_location_for


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

#: Idempotency records live a day, as Stripe's do.
IDEMPOTENCY_TTL_MS = 86_400_000


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def link_key(stored: str) -> bytes:
    """The HMAC key viewer links are signed with, from the stored viewer-link secret."""
    return hashlib.sha256(b"auditbird viewer link\x00" + stored.encode()).digest()


class KeyStore:
    """The service's keys, idempotency records and secrets: in a SQLite file or in PostgreSQL.

    ``KeyStore(path)`` opens a :class:`~.keys_sqlite.SqliteKeyStore`, ``KeyStore("postgresql://...")``
    a :class:`~.keys_postgres.PostgresKeyStore`. ``cache_seconds``: how long a verified key's row
    may be reused without reading it again (0: read it on every request); it bounds how late a
    revoke made elsewhere takes effect.

    A backend implements the row-level methods (``_insert_key``, ``_fetch_key``, ``_revoke_key``,
    ``list``, the idempotency records and the secrets); this class holds what must be the same
    everywhere: what a valid key is, constant-time verification and the cache.
    """

    #: For messages to callers without a key: names no path, host or credential.
    label: str
    #: For the operator (CLI output, logs): the file, or the database without credentials.
    where: str

    def __new__(cls, location: str | os.PathLike[str] | None = None, **options: Any) -> KeyStore:
        if cls is not KeyStore:
            return super().__new__(cls)
        if is_postgres_url(location):
            from .keys_postgres import PostgresKeyStore

            return super().__new__(PostgresKeyStore)
        from .keys_sqlite import SqliteKeyStore

        return super().__new__(SqliteKeyStore)

    def __init__(self, location: str | os.PathLike[str], *, cache_seconds: float = 1.0) -> None:
        self.cache_seconds = cache_seconds
        # key_id -> row as ApiKey fields + hash (None for an unknown id), for cache_seconds.
        # Rows only, never a secret; at most 10,000 (least recently used go first).
        self._cache: TTLCache[str, KeyRow | None] | None = (
            TTLCache(maxsize=10_000, ttl=cache_seconds) if cache_seconds > 0 else None
        )
        self._cache_lock = threading.Lock()

    # -- what a backend provides ------------------------------------------------------------

    def _insert_key(self, key: ApiKey, hashed: str) -> None:
        raise NotImplementedError

    def _fetch_key(self, key_id: str) -> KeyRow | None:
        """The key's row (ApiKey fields, then hash), or None."""
        raise NotImplementedError

    def _revoke_key(self, key_id: str, at: int) -> bool:
        """Mark a live key revoked; True if it was live."""
        raise NotImplementedError

    def _changed_elsewhere(self) -> bool:
        """Whether the keys may have changed since the last call (then no cached row is
        trusted); a backend that cannot tell cheaply relies on the cache's TTL alone."""
        return False

    def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        raise NotImplementedError

    def idempotent_get(self, workspace: str, key: str) -> tuple[str, int, bytes] | None:
        """The recorded answer ``(request digest, status, body)`` to an Idempotency-Key."""
        raise NotImplementedError

    def idempotent_put(
        self, workspace: str, key: str, request: str, status: int, body: bytes
    ) -> tuple[str, int, bytes]:
        """Record the first answer; a concurrent twin that lost the race gets the winner's."""
        raise NotImplementedError

    def forget_idempotency(self, workspace: str) -> int:
        """Delete every idempotency record of ``workspace``; how many. An erasure calls it: a
        record holds the answer as published (personal fields in the clear), and a retry after
        it re-publishes (the derived uid keeps it one event) and reads the stored, erased copy."""
        raise NotImplementedError

    def server_secret(self) -> bytes:
        """The secret that keys uids derived from Idempotency-Keys: made once, then the same
        for every process over these keys (see :mod:`.private_files`)."""
        raise NotImplementedError

    def link_secret(self) -> bytes:
        """The HMAC key of viewer links (made on first use); read on every use, so a rotation
        elsewhere takes effect at once."""
        raise NotImplementedError

    def rotate_link_secret(self) -> None:
        """A new viewer-link secret: every link signed before no longer verifies."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- keys -------------------------------------------------------------------------------

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
        key = ApiKey(key_id, workspace, cast(Scope, scope), name, rate, int(time.time() * 1000))
        self._insert_key(key, _hash(secret))
        self._forget(key_id)
        return CreatedKey(key, f"{PREFIX}_{key_id}_{secret}")

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

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id (``ab_<id>_...``'s id); True if it existed and was live."""
        if key_id.startswith(f"{PREFIX}_"):
            key_id = key_id.split("_", 2)[1]
        revoked = self._revoke_key(key_id, int(time.time() * 1000))
        self._forget(key_id)  # this process stops accepting it at once
        return revoked

    def _row(self, key_id: str) -> KeyRow | None:
        """The key's row: from the cache while fresh (and unchanged elsewhere), else the backend's."""
        if self._cache is not None:
            if self._changed_elsewhere():
                with self._cache_lock:
                    self._cache.clear()
            with self._cache_lock:  # TTLCache is not thread-safe; verify may run in threads
                cached = self._cache.get(key_id, _MISSING)
            if cached is not _MISSING:
                return cast("KeyRow | None", cached)
        found = self._fetch_key(key_id)
        if self._cache is not None:  # unknown ids too: the same cost as a known one
            with self._cache_lock:
                self._cache[key_id] = found
        return found

    def _forget(self, key_id: str) -> None:
        if self._cache is not None:
            with self._cache_lock:
                self._cache.pop(key_id, None)

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
