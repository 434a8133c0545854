"""Opening a SQLite log safely, and saying plainly what is wrong with its storage.

Everything the SQLite store needs before its first query, and every storage failure turned
into one clear error naming the file and what to do:

- a new file is created ``0600`` (its ``-wal`` and ``-shm`` follow: SQLite gives them the
  database file's mode) and atomically, so no process ever sees a half-made, 0-byte log;
- an existing file of 0 bytes is refused: it was truncated, and opening it as an empty log
  would accept writes over what was lost;
- a small file gets ``PRAGMA quick_check`` on open (see ``QUICK_CHECK_MAX_BYTES``);
- a directory that does not exist is not created by a read (the store defers it to the
  first write, see :func:`not_created_yet`): a mistyped path never reads as an empty log;
- ``SQLITE_FULL``, ``SQLITE_READONLY``, ``SQLITE_CORRUPT`` ... become :class:`StorageError`
  subclasses (all :class:`StoreUnavailable`, so the service answers 503 as before).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import cast

from .._errors import StoreUnavailable

__all__ = [
    "QUICK_CHECK_MAX_BYTES",
    "StorageError",
    "StoreFull",
    "StoreReadOnly",
    "StoreDamaged",
    "StoreNotFound",
    "Transaction",
    "open_connection",
    "not_created_yet",
    "directory_missing",
    "translate",
]

# quick_check reads every page: 3-4 s for a 1,000,000-event file (542 MiB, measured on 2 shared
# cores), and the CLI opens the file on every command. Files up to 16 MiB (about 0.1 s) are
# checked on every open; larger ones on demand with `auditbird check` (docs/storage-integrity.md).
QUICK_CHECK_MAX_BYTES = 16 * 1024 * 1024


class StorageError(StoreUnavailable):
    """The file or the disk under a SQLite log is the problem; the message says what to do."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class StoreFull(StorageError):
    """The disk (or a quota) is full: nothing of the write was stored."""


class StoreReadOnly(StorageError):
    """The file, its directory or the mount is read-only for this process."""


class StoreDamaged(StorageError):
    """The file is not a readable SQLite log (truncated, overwritten, corrupt)."""


class StoreNotFound(StorageError):
    """The log's directory does not exist (and a read does not create it)."""


def translate(exc: sqlite3.Error, path: str, doing: str) -> StoreUnavailable:
    """The auditbird error for a ``sqlite3`` error raised while ``doing`` something to ``path``."""
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", "") or ""
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == sqlite3.SQLITE_FULL:
        return StoreFull(
            f"{path}: the disk is full (SQLite: {exc}); {doing} failed and nothing of it was stored. "
            "Free space on that disk (or move the log elsewhere with --store), then retry.",
            path,
        )
    if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM) or (
        primary == sqlite3.SQLITE_CANTOPEN and _not_writable(path)
    ):
        where = "its directory" if name.endswith("DIRECTORY") or not _writable_dir(path) else "the file"
        return StoreReadOnly(
            f"{path}: cannot write, {where} is read-only for this user or on a read-only mount "
            f"(SQLite: {exc}); {doing} failed. auditbird writes the file and its -wal and -shm files "
            "beside it: make them writable (chmod/chown, or mount read-write), or use --store with "
            "a writable path.",
            path,
        )
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StoreDamaged(
            f"{path} is damaged or not an auditbird log (SQLite: {exc}); {doing} failed. "
            f"Run `auditbird --store sqlite:///{path} check` for details, then restore the file from "
            "a backup (or move it aside to start a new log).",
            path,
        )
    if primary == sqlite3.SQLITE_CANTOPEN:
        return StorageError(
            f"cannot open {path} (SQLite: {exc}): check that its directory exists and this user may "
            "read and write it.",
            path,
        )
    if primary == sqlite3.SQLITE_IOERR:
        return StorageError(
            f"{path}: the disk or filesystem reported an I/O error (SQLite: {exc}); {doing} failed. "
            "Check the disk (dmesg, df), then retry.",
            path,
        )
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreUnavailable(f"{path} is busy (another writer holds it too long): {exc}; retry")
    return StoreUnavailable(f"{path}: {doing} failed: {exc}")


def _writable_dir(path: str) -> bool:
    return os.access(Path(path).parent, os.W_OK)


def _not_writable(path: str) -> bool:
    p = Path(path)
    return not _writable_dir(path) or (p.exists() and not os.access(p, os.W_OK))


def _from_os_error(exc: OSError, path: str, doing: str) -> StoreUnavailable:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFull(
            f"{path}: the disk is full ({exc.strerror}); {doing} failed. Free space, then retry.", path
        )
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreReadOnly(
            f"{path}: cannot create it, its directory is read-only for this user or on a read-only "
            f"mount ({exc.strerror}). Make the directory writable, or use --store with a writable path.",
            path,
        )
    return StorageError(f"{path}: {doing} failed: {exc}", path)


# -- opening ------------------------------------------------------------------------------


def directory_missing(path: str) -> bool:
    return path != ":memory:" and not path.startswith("file:") and not Path(path).parent.is_dir()


class _NotCreatedYet:
    """Stands in for the connection of a log whose directory does not exist yet: a use (a read)
    raises :class:`StoreNotFound` while the directory is missing; once it exists (the store's
    first write made it, or another process did) ``opener`` opens the real file in its place."""

    def __init__(self, path: str, opener: Callable[[], sqlite3.Connection]) -> None:
        self.path = path
        self.in_transaction = False
        self._opener = opener

    def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> object:
        directory = Path(self.path).parent
        if directory.is_dir():
            return getattr(self._opener(), name)
        raise StoreNotFound(
            f"no audit log at {self.path}: the directory {directory} does not exist. Check the path "
            "(--store / AUDITBIRD_URL); a log is created by its first publish, never by a read.",
            self.path,
        )


def not_created_yet(path: str, opener: Callable[[], sqlite3.Connection]) -> sqlite3.Connection:
    """A placeholder connection for a log in a missing directory (see :class:`_NotCreatedYet`);
    ``opener`` opens the real one and makes it the store's."""
    return cast(sqlite3.Connection, _NotCreatedYet(path, opener))


def is_placeholder(conn: object) -> bool:
    return isinstance(conn, _NotCreatedYet)


def make_directory(path: str) -> None:
    """Create the log's directory on its first write (``0700``: the keys live beside the log)."""
    try:
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise _from_os_error(exc, path, "creating its directory") from exc


def open_connection(path: str, *, synchronous: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection to the log at ``path`` in WAL mode, checked; raises :class:`StorageError`."""
    if path != ":memory:":
        _check_or_create(path)
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
        )
    except sqlite3.Error as exc:
        raise translate(exc, path, "opening it") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        # 64 MiB of page cache (the default is 2 MiB): the indexes of a large log stay hot.
        conn.execute("PRAGMA cache_size = -65536")
        # Reads check each b-tree cell's bounds: some damage becomes an error, not a wrong answer.
        conn.execute("PRAGMA cell_size_check = ON")
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # "file is not a database"?
        if path != ":memory:" and os.path.getsize(path) <= QUICK_CHECK_MAX_BYTES:
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
            if problems != ["ok"]:
                raise StoreDamaged(
                    f"{path} is damaged: SQLite's quick_check found {'; '.join(problems)}. Run "
                    f"`auditbird --store sqlite:///{path} check` for details, then restore the file "
                    "from a backup (or move it aside to start a new log).",
                    path,
                )
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, path, "opening it") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _check_or_create(path: str) -> None:
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        _create(p)
        return
    except OSError as exc:
        raise _from_os_error(exc, path, "opening it") from exc
    if size == 0:
        raise StoreDamaged(
            f"{path} is empty (0 bytes) where an audit log was expected: it was truncated or made by "
            f"another program, and opening it would start a new log over what was lost. If it held "
            f"events, restore it from a backup; to start a new log, delete it (rm {path} {path}-wal "
            f"{path}-shm) and run again.",
            path,
        )


def _create(p: Path) -> None:
    """Make a new, empty WAL-mode database at ``p``, mode 0600, appearing there atomically: it is
    built under a temporary name and hard-linked into place (a writer that lost the race uses the
    winner's file)."""
    tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex[:12]}.creating")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.chmod(tmp, 0o600)  # whatever the umask
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")  # writes the header: the file is a database now
        finally:
            conn.close()
        try:
            os.link(tmp, p)
        except FileExistsError:
            pass  # another process created it first: use theirs
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            if not p.exists():  # no hard links on this filesystem: a rename (a tiny race)
                os.replace(tmp, p)
    except sqlite3.Error as exc:
        raise translate(exc, str(p), "creating it") from exc
    except OSError as exc:
        raise _from_os_error(exc, str(p), "creating it") from exc
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            with contextlib.suppress(OSError):
                leftover.unlink()


# -- transactions -------------------------------------------------------------------------


class Transaction:
    """``BEGIN IMMEDIATE`` .. ``COMMIT``: takes the write lock up front, so writers queue
    (busy_timeout) instead of failing with a deadlock on upgrade from a read lock.

    On an error SQLite may already have rolled the whole transaction back itself (it does on
    ``SQLITE_FULL`` and I/O errors): the rollback here runs only if a transaction is still open,
    so the error reported is the real one ("disk full"), never "cannot rollback - no
    transaction is active"."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self.conn = conn
        self.path = path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise translate(exc, self.path, "starting a write") from exc
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.Error as error:
                self._rollback()
                raise translate(error, self.path, "the write") from error
        self._rollback()
        if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
            raise translate(exc, self.path, "the write") from exc

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            # A failing rollback must not hide the error that caused it (SQLite then rolls
            # back itself when the connection is next used or closed).
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
