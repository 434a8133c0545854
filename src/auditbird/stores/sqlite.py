"""The embedded default store: one SQLite file, WAL, durable commits, several writers."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

from .._errors import StoreUnavailable
from ..query import Query
from . import sqlite_open
from .base import Row
from .capabilities import FollowStore, HistogramStore, ReplayStore, StoredCopyStore, StreamStore
from .group_commit import GroupCommit
from .sqlite_open import Transaction as _Transaction
from .sqlite_query import COLUMNS_SQL, TRIGRAM, build_recent_text_select, build_select, where_clause
from .sqlite_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    TEXT_INDEX_MIGRATION,
    has_text_index,
    has_trigram,
    statements,
)
from .sqlite_snapshots import FileSnapshots
from .sqlite_tree import SQLiteTree, TreeCursor, Written, create_tree_tables, extend_tree
from .sqlite_write import Request, write_group, write_rows

__all__ = ["SQLiteStore", "SCHEMA_VERSION", "MIGRATIONS", "build_select", "write_rows", "migrate"]

_statements = statements  # the name bench/core_sqlite.py imports

_IDLE_READERS = 8  # reader connections kept open between reads
_TEXT_WINDOW = 2_000  # newest rows a text search looks through before it asks the index


class SQLiteStore(
    FileSnapshots, SQLiteTree, ReplayStore, StreamStore, FollowStore, HistogramStore, StoredCopyStore
):
    """Events in one SQLite file. Every tier (:mod:`auditbird.stores.capabilities`).

    >>> store = SQLiteStore("audit.db")          # or SQLiteStore.from_url("sqlite:///audit.db")

    Commits are durable by default (WAL with ``synchronous=FULL``: a publish that returned
    survives a power cut). ``synchronous="NORMAL"`` trades the last commits on power loss
    (never on a process crash) for speed. Any number of processes may write one file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 30_000,
        tree: bool = True,
    ) -> None:
        self.path = str(path)
        self.tree = tree  # the Merkle tree kept in each append's transaction (auditbird.provable)
        self._tree_cursor = TreeCursor()  # the frontiers, kept between commits (checked in each)
        if synchronous.upper() not in {"FULL", "NORMAL", "EXTRA", "OFF"}:
            raise ValueError(f"synchronous must be FULL, NORMAL, EXTRA or OFF, not {synchronous!r}")
        self._lock = threading.RLock()
        self._options = (synchronous, busy_timeout_ms)
        self._busy_timeout_ms = int(busy_timeout_ms)
        self.text_index = False
        # Reads run on connections of their own, never under the writer's lock: in WAL mode
        # SQLite reads beside a write, so one tenant's long search never holds up another's
        # publish (issue #10). Idle ones are kept for the next read.
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self._group: GroupCommit[Request, dict[int, Row]] = GroupCommit(
            self._commit_group, size=lambda request: len(request[0])
        )
        if sqlite_open.directory_missing(self.path):
            # Made by the first write, never by a read: a mistyped path must not read as an empty log.
            self._conn = sqlite_open.not_created_yet(self.path, self._open)
            return
        self._open()

    def _open(self) -> sqlite3.Connection:
        synchronous, busy_timeout_ms = self._options
        self._conn = sqlite_open.open_connection(
            self.path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms
        )
        self._migrate()
        self.text_index = has_text_index(self._conn)
        return self._conn

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``?synchronous=NORMAL``."""
        parts = urlsplit(url)
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if parts.netloc:  # sqlite://host/... is a typo for sqlite:///...
            raise ValueError(f"{url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db")
        if not path:
            raise ValueError(f"{url!r} names no file; use e.g. sqlite:///./auditbird.db")
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        tree = options.get("tree", "on") not in {"off", "0", "false"}
        return cls(path, synchronous=options.get("synchronous", "FULL"), tree=tree)

    # -- schema ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._lock, self._write() as conn:
            migrate(conn, where=self.path)

    def schema_version(self) -> int:
        row = self._conn.execute("SELECT value FROM auditbird_meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    # -- writes ---------------------------------------------------------------------------

    def _write(self) -> _Transaction:
        if sqlite_open.is_placeholder(self._conn):  # the first write to a log in a new directory
            sqlite_open.make_directory(self.path)
            self._open()
        return _Transaction(self._conn, self.path)

    def append(self, rows: Sequence[Row], *, expected_revision: int | None = None) -> dict[int, Row]:
        """Store ``rows`` in one transaction. With ``expected_revision`` (all rows of one
        stream), fail with :class:`ConflictError` unless the stream holds exactly that many
        events: the check and the insert share the write lock, so one writer wins.

        Threads appending at once share commits (group commit, :mod:`.group_commit`): each
        call returns once the commit holding its rows is durable, and fails alone (its own
        savepoint), never failing the others of its group.

        Returns the stored copy of each row whose uid was already taken, by index (read only
        when the insert skipped one: a new uid costs nothing more)."""
        if not rows:
            return {}
        return self._group.submit((rows, expected_revision))

    def _commit_group(self, group: Sequence[Request]) -> list[dict[int, Row] | BaseException]:
        """One durable transaction for every request of ``group`` (:func:`write_group`), and
        the Merkle tree over what it stored, in the same transaction."""
        with self._lock:
            try:
                with self._write() as conn:
                    written: Written = []
                    answers = write_group(conn, group, self.path, written)
                    if self.tree and (written or any(not isinstance(a, BaseException) for a in answers)):
                        # once per commit: the tree and the events are never apart
                        extend_tree(conn, self._tree_cursor, written)
            except BaseException:
                self._tree_cursor.discard()  # not committed: nor is what the cursor staged
                raise
            self._tree_cursor.committed()
        return answers

    def revision(self, workspace: str, event_id: str) -> int:
        """How many events the stream ``event_id`` holds (not an event's schema ``version``)."""
        with self._lock:
            (count,) = self._conn.execute(
                "SELECT count(*) FROM audit_log WHERE workspace = ? AND id = ?", (workspace, event_id)
            ).fetchone()
        return int(count)

    def histogram(self, query: Query, bucket_ms: int) -> list[tuple[int, str, int]]:
        """``(bucket_start_ms, action, count)`` for the events a query matches (no limit).
        Buckets start at ``query.since`` (or the epoch): ``since + k * bucket_ms``."""
        source, where, params = where_clause(query, text_index=self.text_index)
        origin = query.since or 0
        sql = (
            f"SELECT ((a.timestamp - ?) / ?) * ? + ? AS bucket, a.action, count(DISTINCT a.position) "  # noqa: S608
            f"FROM {source} "
            f"WHERE {' AND '.join(where)} GROUP BY bucket, a.action ORDER BY bucket"
        )
        with self._reading() as conn:
            rows = conn.execute(sql, [origin, bucket_ms, bucket_ms, origin, *params]).fetchall()
        return [(int(b), str(a), int(c)) for b, a, c in rows]

    def read_committed(self, after_position: int = 0, limit: int = 1_000) -> list[Row]:
        """Rows of every workspace committed after ``after_position``, in commit order: the
        outbox relay's read (positions are gap-free, so a reader never skips a commit)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {COLUMNS_SQL} FROM audit_log AS a WHERE a.position > ? "  # noqa: S608
                "ORDER BY a.position LIMIT ?",
                (after_position, limit),
            ).fetchall()
        return [Row._make(r) for r in rows]

    def last_position(self) -> int:
        """The position of the newest committed row (0 when empty)."""
        with self._lock:
            (last,) = self._conn.execute("SELECT coalesce(max(position), 0) FROM audit_log").fetchone()
        return int(last)

    # -- reads ----------------------------------------------------------------------------

    def query(self, query: Query) -> list[Row]:
        with self._reading() as conn:
            try:
                if self.text_index and _recent_first(query):
                    sql, params = build_recent_text_select(query, _TEXT_WINDOW)
                    rows = conn.execute(sql, params).fetchall()
                    if len(rows) >= (query.limit or 0):
                        return [Row._make(r) for r in rows]
                sql, params = build_select(query, text_index=self.text_index)
                rows = conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise sqlite_open.translate(exc, self.path, "reading") from exc
        return [Row._make(r) for r in rows]

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A connection for one read: an idle reader, or a new one (``:memory:``: the writer's,
        under its lock, as a private in-memory database has no other connection)."""
        if self.path == ":memory:" or sqlite_open.is_placeholder(self._conn):
            # A log in a missing directory: its placeholder answers with a clear StoreNotFound.
            with self._lock:
                yield self._conn
            return
        with self._readers_lock:
            conn = self._readers.pop() if self._readers else None
        if conn is None:
            conn = self._open_reader()
        try:
            yield conn
        finally:
            with self._readers_lock:
                keep = not self._closed and len(self._readers) < _IDLE_READERS
                if keep:
                    self._readers.append(conn)
            if not keep:
                conn.close()

    def _open_reader(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout_ms / 1000
            )
        except sqlite3.Error as exc:
            raise sqlite_open.translate(exc, self.path, "opening to read") from exc
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        conn.execute("PRAGMA query_only = 1")  # a reader never writes, whatever it is asked
        conn.execute("PRAGMA cache_size = -16384")
        return conn

    def close(self) -> None:
        with self._readers_lock:
            self._closed = True
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def migrate(conn: sqlite3.Connection, *, where: str = "the database") -> None:
    """Bring ``conn``'s database to this store's schema, inside the caller's open transaction
    (the store's own, or the application's for ``auditbird.emit``)."""
    conn.execute("CREATE TABLE IF NOT EXISTS auditbird_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    found = conn.execute("SELECT value FROM auditbird_meta WHERE key = 'schema_version'").fetchone()
    current = int(found[0]) if found else 0
    if current > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"{where} has schema version {current}, newer than this auditbird "
            f"understands ({SCHEMA_VERSION}); upgrade auditbird"
        )
    trigram = has_trigram()
    for version, script in enumerate(MIGRATIONS[current:], current + 1):
        if version == TEXT_INDEX_MIGRATION and not trigram:
            continue
        for statement in statements(script):
            conn.execute(statement)
    if current == SCHEMA_VERSION and trigram and not has_text_index(conn):
        # Migrated by an SQLite without trigrams; this one has them: build the index now.
        for statement in statements(MIGRATIONS[TEXT_INDEX_MIGRATION - 1]):
            conn.execute(statement)
    if current != SCHEMA_VERSION:
        conn.execute(
            "INSERT OR REPLACE INTO auditbird_meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
    create_tree_tables(conn)


def _recent_first(q: Query) -> bool:
    """A text search worth trying on the newest rows before the index (see
    :func:`~.sqlite_query.build_recent_text_select`)."""
    return bool(q.text) and len(q.text or "") >= TRIGRAM and q.limit is not None and q.order != "position"
