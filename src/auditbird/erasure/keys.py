"""Subject keys: one AES-256 data key per (workspace, data subject), apart from the events.

The keys live in ``<store>.subjects.db``, a SQLite file made 0600 from its first byte (like the
service's key file), never in the event store: erasing a subject deletes its key row, and the
events, their Merkle tree and every copy of them keep only ciphertext nobody can open again.

Deleting must leave no copy of the key behind in the file: the database runs with
``secure_delete`` (freed pages are zeroed) and a rollback journal rather than a WAL (a WAL
would keep the deleted key's page until a checkpoint). Keys are stored as they are (not
wrapped under a master key): whoever can read this file can read the personal fields, so it
gets the file mode, the backups and the access rules of a secret (docs/erasure.md).

Another process may erase a subject while this one has its key cached (the CLI while the
service runs): every committed write bumps the file change counter in the database header
(bytes 24-27, in rollback-journal mode), and when it moved the caches are dropped before the
lookup. Reading those four bytes costs a ``pread`` (about 1 us; ``PRAGMA data_version``, which
says the same, costs 20).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "SubjectKeyStore",
    "SubjectKeys",
    "subject_keys_path",
    "keyring_lookup",
    "register",
    "register_postgres",
    "KeyNotInMemory",
    "keys_in_memory_only",
]

# Set while an async publish seals on the event loop: a key store then answers from memory or
# raises KeyNotInMemory, and the publish seals again on a thread (a new subject's key costs an
# INSERT and fsyncs, 15-100 ms, which must not stall every other request of the loop).
_IN_MEMORY_ONLY: ContextVar[bool] = ContextVar("auditbird_subject_keys_in_memory_only", default=False)


class KeyNotInMemory(Exception):  # noqa: N818 - a signal to retry on a thread, not an error
    """A subject key needs file or database work, refused inside :func:`keys_in_memory_only`."""


@contextlib.contextmanager
def keys_in_memory_only() -> Iterator[None]:
    """Within the block (this task or thread only), ``key_for`` answers from memory or raises
    :class:`KeyNotInMemory`: the caller does the work again off the event loop."""
    token = _IN_MEMORY_ONLY.set(True)
    try:
        yield
    finally:
        _IN_MEMORY_ONLY.reset(token)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS subject_keys (
    kid TEXT PRIMARY KEY,
    workspace TEXT NOT NULL,
    subject TEXT NOT NULL,
    key BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (workspace, subject)
);
CREATE TABLE IF NOT EXISTS subject_erasures (
    kid TEXT PRIMARY KEY,
    workspace TEXT NOT NULL,
    subject TEXT NOT NULL,
    erased_ms INTEGER NOT NULL
);
"""


class SubjectKeyStore(Protocol):
    """Where subject keys live: a SQLite file (:class:`SubjectKeys`) or PostgreSQL
    (:class:`~auditbird.erasure.keys_postgres.PostgresSubjectKeys`)."""

    def key_for(self, workspace: str, subject: str) -> tuple[str, AESGCM]: ...
    def lookup(self, kid: str) -> tuple[str, AESGCM] | None: ...
    def has_subject(self, workspace: str, subject: str) -> bool: ...
    def destroy(self, workspace: str, subject: str) -> int: ...
    def close(self) -> None: ...


def subject_keys_path(store_path: str | os.PathLike[str]) -> Path:
    """``audit.db`` -> ``audit.subjects.db`` (beside it, like ``audit.keys.db``)."""
    path = Path(store_path)
    return path.with_name(path.stem + ".subjects.db")


class SubjectKeys:
    """The per-subject data keys of one event store. Thread-safe; opened on first use, and
    the file is created only when the first key is made."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._by_subject: dict[tuple[str, str], tuple[str, AESGCM]] = {}
        self._by_kid: dict[str, tuple[str, AESGCM]] = {}
        self._version = b""
        self._fd = -1

    # -- connection -----------------------------------------------------------------------

    def _open(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is not None:
            return self._conn
        if not create and not self.path.exists():
            return None
        conn = _connect_private(self.path)
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA secure_delete=ON")
        conn.executescript(_SCHEMA)
        # Held open until close(): closing any descriptor of the file would drop the SQLite
        # connection's POSIX locks on it.
        self._fd = os.open(self.path, os.O_RDONLY)
        self._close_fd = weakref.finalize(self, os.close, self._fd)  # also when dropped unclosed
        self._conn = conn
        return conn

    def _fresh(self, conn: sqlite3.Connection) -> None:
        """Drop the caches if any connection committed to the file since they were filled."""
        version = os.pread(self._fd, 4, 24)
        if version != self._version:
            self._by_subject.clear()
            self._by_kid.clear()
            self._version = version

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._close_fd()
                self._fd = -1
                self._version = b""

    # -- keys -----------------------------------------------------------------------------

    def key_for(self, workspace: str, subject: str) -> tuple[str, AESGCM]:
        """``(kid, cipher)`` of ``subject`` in ``workspace``, its key made (and stored) on first use.

        A subject erased before gets a new key: erasure covers what was written before it."""
        if _IN_MEMORY_ONLY.get():
            return self._key_in_memory(workspace, subject)
        with self._lock:
            conn = self._open(create=True)
            assert conn is not None
            self._fresh(conn)
            found = self._by_subject.get((workspace, subject))
            if found is not None:
                return found
            select = "SELECT kid, key FROM subject_keys WHERE workspace = ? AND subject = ?"
            row = conn.execute(select, (workspace, subject)).fetchone()
            if row is None:
                # Two processes making the first key at once: one insert wins, both read it back.
                conn.execute(
                    "INSERT OR IGNORE INTO subject_keys (kid, workspace, subject, key, created_ms) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        secrets.token_urlsafe(12),
                        workspace,
                        subject,
                        secrets.token_bytes(32),
                        time.time_ns() // 1_000_000,
                    ),
                )
                row = conn.execute(select, (workspace, subject)).fetchone()
                self._fresh(conn)  # our own insert moved the counter: the caches start over
            found = (str(row[0]), AESGCM(bytes(row[1])))
            self._by_subject[(workspace, subject)] = found
            return found

    def _key_in_memory(self, workspace: str, subject: str) -> tuple[str, AESGCM]:
        # Never waits: the lock may be held by a thread writing the file.
        if not self._lock.acquire(blocking=False):
            raise KeyNotInMemory(subject)
        try:
            if self._conn is None:
                raise KeyNotInMemory(subject)
            self._fresh(self._conn)  # a 4-byte pread of the header, from the page cache
            found = self._by_subject.get((workspace, subject))
            if found is None:
                raise KeyNotInMemory(subject)
            return found
        finally:
            self._lock.release()

    def lookup(self, kid: str) -> tuple[str, AESGCM] | None:
        """``(workspace, cipher)`` of ``kid``, or None if it was erased or never made here."""
        with self._lock:
            conn = self._open(create=False)
            if conn is None:
                return None
            self._fresh(conn)
            found = self._by_kid.get(kid)
            if found is None:
                row = conn.execute("SELECT workspace, key FROM subject_keys WHERE kid = ?", (kid,)).fetchone()
                if row is None:
                    return None
                found = self._by_kid[kid] = (str(row[0]), AESGCM(bytes(row[1])))
            return found

    def has_subject(self, workspace: str, subject: str) -> bool:
        with self._lock:
            conn = self._open(create=False)
            if conn is None:
                return False
            row = conn.execute(
                "SELECT 1 FROM subject_keys WHERE workspace = ? AND subject = ?", (workspace, subject)
            ).fetchone()
            return row is not None

    def destroy(self, workspace: str, subject: str) -> int:
        """Delete the subject's key (zeroed in the file, see the module doc); how many were
        deleted (0: no key for this subject in this workspace, nothing changed)."""
        with self._lock:
            conn = self._open(create=False)
            if conn is None:
                return 0
            now = time.time_ns() // 1_000_000
            conn.execute("BEGIN IMMEDIATE")
            try:
                kids = [
                    str(r[0])
                    for r in conn.execute(
                        "SELECT kid FROM subject_keys WHERE workspace = ? AND subject = ?",
                        (workspace, subject),
                    )
                ]
                conn.executemany(
                    "INSERT OR REPLACE INTO subject_erasures (kid, workspace, subject, erased_ms) "
                    "VALUES (?, ?, ?, ?)",
                    [(kid, workspace, subject, now) for kid in kids],
                )
                conn.execute(
                    "DELETE FROM subject_keys WHERE workspace = ? AND subject = ?", (workspace, subject)
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._by_subject.clear()
            self._by_kid.clear()
            return len(kids)


def _connect_private(path: Path) -> sqlite3.Connection:
    """An autocommit connection to ``path``, created 0600 from its first byte (as
    ``service.private_files`` does for the key file; the library must not import the service).
    The journal SQLite makes beside it gets the database file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
        os.chmod(path, 0o600)  # made world-readable by someone else: narrow it
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)


# -- the keyring: the key stores of the logs alive in this process, for the one decode path --------

# One key store per file (or database) while any log uses it: logs hold them, the keyring only
# weakly, so a closed and dropped log's store (a deleted file, a dropped database) leaves it.
# The per-value lookup reads a plain tuple of weak references, without a lock.
_KEYRING: weakref.WeakValueDictionary[str, SubjectKeyStore] = weakref.WeakValueDictionary()
_KEYRING_ORDER: tuple[weakref.ref[SubjectKeyStore], ...] = ()
_KEYRING_LOCK = threading.Lock()


# Kids no key store had (erased, or never made here): asked once, not per value and read. A
# miss stays a miss (kids are random and never reused; a reader sees a sealed value only after
# its key committed), until another key store joins the keyring (it may have them).
_MISSES: dict[str, None] = {}
_GENERATION = [0]  # bumped with each new key store: a look-up that began before records no miss
_MAX_MISSES = 4096
# A key store that failed is not asked again for this long (a database that is down would make
# every sealed value of a read wait for its connect timeout): its values read as unreadable.
_DOWN_SECONDS = 1.0
# Until when, and the failure's text: not the exception, whose traceback would hold the store.
_DOWN: weakref.WeakKeyDictionary[SubjectKeyStore, tuple[float, str]] = weakref.WeakKeyDictionary()


class KeyStoreUnavailable(Exception):
    """No key store had the key, and at least one could not be asked."""


def register(path: str | os.PathLike[str]) -> SubjectKeyStore:
    """The process's :class:`SubjectKeys` for ``path`` (one per file, shared by every log)."""
    name = os.path.abspath(path)
    return _register(name, lambda: SubjectKeys(name))


def register_postgres(url: str) -> SubjectKeyStore:
    """The process's subject keys in the PostgreSQL database at ``url``."""
    from .keys_postgres import PostgresSubjectKeys

    return _register(url, lambda: PostgresSubjectKeys(url))


def _register(name: str, make: Callable[[], SubjectKeyStore]) -> SubjectKeyStore:
    global _KEYRING_ORDER
    with _KEYRING_LOCK:
        found = _KEYRING.get(name)
        if found is None:
            found = _KEYRING[name] = make()
            _MISSES.clear()  # the new store may hold kids missed so far
            _GENERATION[0] += 1
            alive = tuple(ref for ref in _KEYRING_ORDER if ref() is not None)
            _KEYRING_ORDER = (*alive, weakref.ref(found))
        return found


def keyring_lookup(kid: str) -> tuple[str, AESGCM] | None:
    """The key ``kid`` in any key store of this process's logs (kids are random: 96 bits).

    Raises :class:`KeyStoreUnavailable` when none has it and one failed to answer (a database
    that is down): the value is then unreadable for now, not erased."""
    if kid in _MISSES:
        return None
    generation = _GENERATION[0]
    failed: str | None = None
    now = time.monotonic()
    for ref in _KEYRING_ORDER:
        keys = ref()
        if keys is None:
            continue
        down = _DOWN.get(keys)
        if down is not None and down[0] > now:
            failed = down[1]
            continue
        try:
            found = keys.lookup(kid)
        except Exception as exc:  # one store down must not fail reads of another's values
            failed = str(exc)
            with _KEYRING_LOCK:
                _DOWN[keys] = (now + _DOWN_SECONDS, failed)
            continue
        if found is not None:
            return found
    if failed is not None:
        raise KeyStoreUnavailable(failed)
    with _KEYRING_LOCK:
        if generation != _GENERATION[0]:
            return None
        if len(_MISSES) >= _MAX_MISSES:
            del _MISSES[next(iter(_MISSES))]  # the oldest
        _MISSES[kid] = None
    return None
