"""A durable local spool for buffered writes: rows wait in a SQLite file until acknowledged.

``append`` writes NDJSON lines to the spool (one transaction, WAL, ``synchronous=FULL``:
on disk before it returns) and a background thread sends them in batches. A row leaves the
spool only after the server acknowledged it, so a crash of the process or an outage of the
server loses nothing; a spool left behind is re-sent when the next process opens it, and
the server's de-duplication by ``uid`` makes the re-sent rows harmless.
"""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

from .._errors import AuditError, StoreUnavailable

__all__ = ["Spool", "SpoolLost", "BufferedWriter"]

log = logging.getLogger("auditbird.spool")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- AUTOINCREMENT: a sequence number is never reused, so acknowledging the range lo..hi can
-- never delete a row appended after that range was read (even by another process).
CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT NOT NULL);
"""


class SpoolLost(AuditError):
    """The spool file was deleted or replaced while open: a write now would be acknowledged
    into a file no one can find after a crash, so it is refused."""


class Spool:
    """NDJSON lines on disk, in append order, for one destination.

    The file's identity (device and inode) is taken on open and checked before every write:
    a spool deleted or replaced under an open connection keeps working on the unlinked inode,
    silently, and would lose every row in it at the next crash.
    """

    def __init__(self, path: str | Path, *, destination: str, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Rows wait here unsent: private to their user like the log itself (0600; SQLite gives
            # the -wal and -shm files the same mode).
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the spool {self.path}: {exc}") from exc
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA journal_mode = WAL")
            if synchronous.upper() not in {"FULL", "EXTRA", "NORMAL"}:
                raise ValueError(f"spool synchronous must be FULL, EXTRA or NORMAL, not {synchronous!r}")
            self._conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            self._conn.executescript(_SCHEMA)
            self._conn.execute(
                "INSERT OR IGNORE INTO spool_meta (key, value) VALUES ('destination', ?)", (destination,)
            )
            (found,) = self._conn.execute("SELECT value FROM spool_meta WHERE key = 'destination'").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the spool {self.path}: {exc}") from exc
        if found != destination:
            self._conn.close()
            raise ValueError(
                f"the spool {self.path} holds rows for {found}, not {destination}; "
                "use another spool_path (rows in it are sent when a store for that destination opens it)"
            )
        self._lock = threading.Lock()
        self._identity = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def check(self) -> None:
        """Raise :class:`SpoolLost` if the file at ``path`` is no longer the one this spool opened."""
        now = self._stat()
        if now == self._identity:
            return
        what = "deleted" if now is None else "replaced by another file"
        raise SpoolLost(
            f"the spool {self.path} was {what} while this writer had it open: new rows are refused, "
            "since they would be acknowledged into a file no process can find after a crash. Find what "
            "removed it (a tmp cleaner, an rm of the cache directory), keep spools where nothing cleans "
            "(spool_path=...), and open the store again."
        )

    def put(self, lines: Sequence[str]) -> None:
        """Append lines durably, all or none; :class:`SpoolLost` if the file is gone."""
        with self._lock:
            self.check()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany("INSERT INTO pending (line) VALUES (?)", [(x,) for x in lines])
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreUnavailable(f"cannot write to the spool {self.path}: {exc}") from exc

    def take(self, max_rows: int) -> tuple[int, int, list[str]]:
        """The oldest lines (without removing them) and the range of their sequence numbers."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, line FROM pending ORDER BY seq LIMIT ?", (max_rows,)
            ).fetchall()
        if not rows:
            return 0, -1, []
        return rows[0][0], rows[-1][0], [line for _, line in rows]

    def ack(self, lo: int, hi: int) -> None:
        """Forget lines the server acknowledged."""
        with self._lock:
            self._conn.execute("DELETE FROM pending WHERE seq BETWEEN ? AND ?", (lo, hi))

    def pending(self) -> int:
        with self._lock:
            (count,) = self._conn.execute("SELECT count(*) FROM pending").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _Stopping(Exception):
    """The writer is closing: the background thread abandons its retry wait."""


# Writers still open at interpreter exit get one last flush (weak: never keeps one alive).
_open_writers: weakref.WeakSet[BufferedWriter] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for writer in list(_open_writers):
        try:
            writer.close()
        except Exception as exc:  # at exit nobody can catch it: say where the rows are
            log.error("auditbird: %s", exc)


class BufferedWriter:
    """Spools lines and sends them from a background thread by size or time.

    ``send(lines, sleep)`` delivers one batch or raises; ``sleep`` is the wait it must use
    between retries (the writer interrupts it on close). A :class:`StoreUnavailable` keeps
    the rows and retries later; any other error stops sending and is raised by the next
    ``append``, ``flush`` or ``close``, with the rows still in the spool.
    """

    def __init__(
        self,
        spool: Spool,
        send: Callable[[Sequence[str], Callable[[float], object]], None],
        *,
        batch_rows: int,
        flush_interval: float,
    ) -> None:
        self.spool = spool
        self._send = send
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self._send_lock = threading.Lock()  # one drain at a time: no batch is sent twice
        self._wake = threading.Condition()
        self._unsent = spool.pending()
        self._closing = threading.Event()
        self._closed = False
        self._fatal: AuditError | None = None  # sending stopped: raised by every later call
        self._reported: AuditError | None = None  # delivered with an error: raised once
        self._lost: SpoolLost | None = None  # the spool file vanished: writes refused from then on
        self.last_error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"auditbird-spool:{spool.path.name}", daemon=True
        )
        self._thread.start()
        _open_writers.add(self)

    def append(self, lines: Sequence[str]) -> None:
        if self._closed:
            raise StoreUnavailable("this buffered store is closed")
        if self._fatal is not None:
            raise self._fatal
        try:
            self.spool.put(lines)
        except SpoolLost as exc:
            self._note_lost(exc)
            raise
        with self._wake:
            self._unsent += len(lines)
            if self._unsent >= self.batch_rows:
                self._wake.notify()

    def flush(self) -> None:
        """Send everything spooled now, in the caller's thread; raise if it cannot be sent,
        or if rows sent in the background came back with an error (e.g. quarantined)."""
        if self._fatal is not None:
            raise self._fatal
        self._check_spool()
        with self._send_lock:
            self._drain(time.sleep)  # what the open (maybe unlinked) file holds is still sent
        self._raise_reported()
        if self._lost is not None:
            raise self._lost

    def _check_spool(self) -> SpoolLost | None:
        try:
            self.spool.check()
        except SpoolLost as exc:
            self._note_lost(exc)
        return self._lost

    def _note_lost(self, exc: SpoolLost) -> None:
        if self._lost is None:  # logged once, raised on every later write
            self._lost = exc
            log.error("auditbird: %s", exc)

    def _raise_reported(self) -> None:
        reported, self._reported = self._reported, None
        if reported is not None:
            raise reported

    def close(self) -> None:
        """Stop the thread, send what is left; on failure the rows stay in the spool."""
        if self._closed:
            return
        self._closed = True
        _open_writers.discard(self)
        self._closing.set()
        with self._wake:
            self._wake.notify()
        self._thread.join()
        try:
            if self._fatal is not None:
                raise self._fatal
            with self._send_lock:
                self._drain(time.sleep)
            self._raise_reported()
        except AuditError as exc:
            if exc.delivered:
                self.spool.close()
                raise
            left = self.spool.pending()
            lost = self._check_spool()
            self.spool.close()
            note = (
                f" -- {left} row(s) are kept in the spool {self.spool.path} and will be sent "
                "when a store opens it again"
                if lost is None
                else f" -- {left} row(s) were in the spool {self.spool.path}, which was deleted or "
                "replaced: they are lost unless the application sends them again"
            )
            try:
                error = type(exc)(f"{exc}{note}")
            except TypeError:  # an error type with another constructor: raise it unchanged
                raise exc from None
            raise error from exc
        self.spool.close()

    # -- the background thread ------------------------------------------------------------

    def _drain(self, sleep: Callable[[float], object]) -> None:
        while True:
            lo, hi, lines = self.spool.take(self.batch_rows)
            if not lines:
                with self._wake:
                    self._unsent = 0
                return
            try:
                self._send(lines, sleep)
            except AuditError as exc:
                if exc.delivered:  # e.g. quarantined: sending again won't help
                    self.spool.ack(lo, hi)
                raise
            self.spool.ack(lo, hi)
            with self._wake:
                self._unsent = max(0, self._unsent - len(lines))

    def _interruptible_sleep(self, seconds: float) -> None:
        if self._closing.wait(seconds):
            raise _Stopping

    def _run(self) -> None:
        backoff = self.flush_interval
        while not self._closing.is_set():
            with self._wake:
                if self._unsent < self.batch_rows:
                    self._wake.wait(backoff)
            if self._closing.is_set():
                return
            self._check_spool()  # logs a vanished spool even when nobody writes
            try:
                with self._send_lock:
                    self._drain(self._interruptible_sleep)
                backoff = self.flush_interval
            except _Stopping:
                return
            except StoreUnavailable as exc:  # an outage: the rows wait in the spool
                self.last_error = exc
                backoff = min(max(backoff * 2, 1.0), 30.0)
                log.warning("auditbird: spooled rows not sent yet, retrying in %.0fs: %s", backoff, exc)
            except AuditError as exc:
                self.last_error = exc
                if exc.delivered:  # quarantined rows: report, keep sending
                    self._reported = exc
                    log.error("auditbird: %s", exc)
                    continue
                self._fatal = exc  # wrong token, missing datasource: needs a person
                log.error("auditbird: stopped sending spooled rows: %s", exc)
                return
            except Exception as exc:  # never let the thread die silently
                self.last_error = exc
                backoff = min(max(backoff * 2, 1.0), 30.0)
                log.exception("auditbird: unexpected error sending spooled rows")
