"""The PostgreSQL store: the audit rows beside the application's own tables.

    store = PostgresStore("postgresql://app@db.internal/app")    # or AuditLog("postgresql://...")

psycopg 3 with a connection pool (``pip install 'auditbird[postgres]'``). Every tier of the
SQLite store: history oldest first, streams with ``expected_revision``, gap-free commit
positions with ``follow`` woken by LISTEN/NOTIFY, histograms and projection snapshots. How
positions stay in commit order without gaps: :mod:`auditbird.stores.postgres_write`; the schema
and its migrations: :mod:`auditbird.stores.postgres_schema`. A publish that returned is
committed (``synchronous_commit`` as the server has it, ``on`` by default).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .._errors import StoreUnavailable
from ..query import Query
from ..row import Row
from ..snapshots import Snapshot
from .capabilities import (
    AsyncCommitWaiter,
    CommitWaiter,
    FollowStore,
    HistogramStore,
    ReplayStore,
    SnapshotStoreTier,
    StoredCopyStore,
    StreamStore,
)
from .postgres_follow import CommitListener, PostgresPositions
from .postgres_query import COLUMNS_SQL, build_select, where_clause
from .postgres_schema import SCHEMA_VERSION, ensure_text_index, has_text_index, migrate, schema_version
from .postgres_snapshots import GENERATION_SQL, LOAD_SQL, delete_snapshots, granted, save_snapshot
from .postgres_write import append_pipelined

__all__ = ["PostgresStore", "SCHEMA_VERSION", "connect_error"]


def _flag(value: str) -> bool:
    """``text_index=true`` in a URL: a yes/no word, anything else refused."""
    lowered = value.lower()
    if lowered not in ("1", "true", "on", "yes", "0", "false", "off", "no"):
        raise ValueError(value)
    return lowered in ("1", "true", "on", "yes")


_OPTIONS: dict[str, Any] = {"pool_size": int, "connect_timeout": float, "text_index": _flag}


class PostgresStore(
    ReplayStore,
    StreamStore,
    FollowStore,
    HistogramStore,
    SnapshotStoreTier,
    StoredCopyStore,
    CommitWaiter,
    AsyncCommitWaiter,
):
    """Events in a PostgreSQL database (tables ``audit_log``, ``audit_target``, ...).

    >>> store = PostgresStore("postgresql://app@localhost/app", pool_size=10)   # doctest: +SKIP

    The tables are created (or migrated) on open; a role that may not create them gets an
    error saying so. ``pool_size`` bounds the connections this store opens. ``text_index=True``
    (URL: ``?text_index=true``) builds the trigram index ``text=`` searches use, once; it stays
    until dropped. Without it a text search scans the workspace newest first, and every write is
    cheaper (see :mod:`auditbird.stores.postgres_schema`).
    """

    def __init__(
        self, url: str, *, pool_size: int = 10, connect_timeout: float = 10.0, text_index: bool = False
    ) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise StoreUnavailable(
                "the PostgreSQL store needs psycopg: pip install 'auditbird[postgres]'"
            ) from exc
        self.url = url
        self.where = _where(url)
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._connect_timeout = connect_timeout
        with self._connect() as conn, conn.transaction():
            try:
                migrate(conn, where=self.where)
                if text_index:
                    ensure_text_index(conn, where=self.where)
                # Asked once: an index built later by another process is used after a reopen.
                self.text_index = has_text_index(conn)
            except StoreUnavailable:
                raise
            except psycopg.Error as exc:
                raise StoreUnavailable(f"cannot prepare the auditbird tables in {self.where}: {exc}") from exc
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(connect_timeout))},
            open=False,
            name=f"auditbird {self.where}",
        )
        self._pool.open(wait=True, timeout=connect_timeout)
        self._listener = CommitListener(self._connect)
        self._closed = threading.Event()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresStore:
        """``postgresql://user:password@host:port/dbname?sslmode=require&pool_size=20``.

        ``pool_size``, ``connect_timeout`` and ``text_index`` are auditbird's; every other query
        option goes to libpq as it is."""
        parts = urlsplit(url)
        libpq, ours = [], dict(options)
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in _OPTIONS:
                try:
                    ours[key] = _OPTIONS[key](value)
                except ValueError:
                    kind = "true or false" if key == "text_index" else "a number"
                    raise ValueError(f"{key}={value!r} in the store URL must be {kind}") from None
            else:
                libpq.append((key, value))
        scheme = "postgresql"
        # quote, not quote_plus: libpq reads "+" as a plus sign, not a space
        clean = urlunsplit((scheme, parts.netloc, parts.path, urlencode(libpq, quote_via=quote), ""))
        _check_url(clean)
        return cls(clean, **ours)

    # -- connections --------------------------------------------------------------------

    def _connect(self) -> Any:
        """A new autocommit connection, its failure said plainly."""
        import psycopg

        try:
            return psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, round(self._connect_timeout))
            )
        except psycopg.Error as exc:
            raise connect_error(self.where, exc) from exc

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self._pool.connection(timeout=self._connect_timeout) as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreUnavailable(
                f"no connection to {self.where} within {self._connect_timeout:g}s: the server is down "
                "or every pooled connection is busy; retry, or raise pool_size"
            ) from exc
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"PostgreSQL at {self.where} failed: {exc}; retry") from exc

    # -- writes ---------------------------------------------------------------------------

    def append(self, rows: Sequence[Row], *, expected_revision: int | None = None) -> dict[int, Row]:
        """Store ``rows`` in one transaction, all or none; with ``expected_revision`` only if the
        stream holds exactly that many events (:class:`ConflictError` otherwise). Returns the rows
        not stored as given (a uid already taken: its first copy), by index; ``{}``, with no read,
        when every row was new."""
        if not rows:
            return {}
        import psycopg

        for _attempt in (1, 2):
            with self._connection() as conn:
                try:
                    stored = append_pipelined(conn, rows, expected_revision=expected_revision)
                    return {} if stored == len(rows) else self._stored_copies(rows)
                except psycopg.OperationalError as exc:
                    lost = exc
            self._pool.check()  # drop the other pooled connections that died with it
            # The connection died with the batch sent: it committed whole or not at all. Ask;
            # if none of it was stored, sending it once more on a fresh connection is safe
            # (a pooled connection from before a server restart fails this way).
            if self._all_stored(rows, lost):
                return self._stored_copies(rows)
        raise StoreUnavailable(
            f"the connection to {self.where} was lost twice ({lost}): none of the {len(rows)} events "
            "was stored; retry later"
        ) from lost

    def _stored_copies(self, rows: Sequence[Row]) -> dict[int, Row]:
        """The rows of ``rows`` whose stored copy differs from what was sent (a uid taken
        before, or earlier in the batch), by index: one read, only when some row was skipped."""
        keys = sorted({(r.workspace, r.uid) for r in rows})
        found = self._fetch(
            f"SELECT {COLUMNS_SQL} FROM audit_log AS a WHERE (a.workspace, a.uid) IN "  # noqa: S608
            "(SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([k[0] for k in keys], [k[1] for k in keys]),
        )
        stored = {(r[1], r[0]): Row._make(r) for r in found}
        out: dict[int, Row] = {}
        for i, row in enumerate(rows):
            kept = stored.get((row.workspace, row.uid))
            if kept is not None and tuple(kept[:9]) != tuple(row[:9]):
                out[i] = kept
        return out

    def _all_stored(self, rows: Sequence[Row], lost: BaseException) -> bool:
        keys = {(r.workspace, r.uid) for r in rows}
        try:
            found = self._one(
                "SELECT count(*) FROM audit_log WHERE (workspace, uid) IN "
                "(SELECT * FROM unnest(%s::text[], %s::text[]))",
                ([k[0] for k in keys], [k[1] for k in keys]),
            )
        except StoreUnavailable as exc:
            raise StoreUnavailable(
                f"the connection to {self.where} was lost while storing {len(rows)} events and it "
                "cannot be asked whether they were: they are stored all or none; publish them again "
                "with the same uids (a stored uid is skipped, so nothing is stored twice)"
            ) from exc
        return int(found) == len(keys)

    def revision(self, workspace: str, event_id: str) -> int:
        """How many events the stream holds."""
        sql = "SELECT count(*) FROM audit_log WHERE workspace = %s AND id = %s"
        return int(self._one(sql, (workspace, event_id)))

    # -- reads ----------------------------------------------------------------------------

    def query(self, query: Query) -> list[Row]:
        sql, params = build_select(query, text_index=self.text_index)
        return [Row._make(r) for r in self._fetch(sql, params)]

    def histogram(self, query: Query, bucket_ms: int) -> list[tuple[int, str, int]]:
        """``(bucket_start_ms, action, count)``; buckets start at ``query.since`` (or 0)."""
        source, where, params = where_clause(query, text_index=self.text_index)
        origin = query.since or 0
        sql = (
            "SELECT ((a.timestamp - %s) / %s) * %s + %s AS bucket, a.action, count(DISTINCT a.position) "  # noqa: S608
            f"FROM {source} WHERE {' AND '.join(where)} GROUP BY bucket, a.action ORDER BY bucket, a.action"
        )
        rows = self._fetch(sql, [origin, bucket_ms, bucket_ms, origin, *params])
        return [(int(b), str(a), int(c)) for b, a, c in rows]

    def read_committed(self, after_position: int = 0, limit: int = 1_000) -> list[Row]:
        """Every workspace's rows committed after ``after_position``, in commit order."""
        rows = self._fetch(
            f"SELECT {COLUMNS_SQL} FROM audit_log AS a WHERE a.position > %s "  # noqa: S608
            "ORDER BY a.position LIMIT %s",
            (after_position, limit),
        )
        return [Row._make(r) for r in rows]

    def last_position(self) -> int:
        return int(self._one("SELECT coalesce(max(position), 0) FROM audit_log", ()))

    def wait_for_commit(self, token: int | None, timeout: float | None, stop: threading.Event | None) -> int:
        """Wait for a commit after ``token`` (LISTEN/NOTIFY, no polling): see postgres_follow."""
        return self._listener.wait(token, timeout, stop)

    async def wait_for_commit_async(
        self, token: int | None, timeout: float | None, stop: threading.Event | None
    ) -> int:
        """:meth:`wait_for_commit` for ``AsyncAuditLog.follow``: no thread waits, no query is sent."""
        return await self._listener.wait_async(token, timeout, stop)

    def schema_version(self) -> int:
        with self._connection() as conn:
            return schema_version(conn)

    def _one(self, sql: str, params: Sequence[object]) -> Any:
        ((value,),) = self._fetch(sql, params)
        return value

    def _fetch(self, sql: str, params: Sequence[object]) -> list[Any]:
        """A read. A pooled connection the server dropped (a restart, an idle timeout) fails on
        first use: reads are idempotent, so one retry on a fresh connection hides it."""
        import psycopg

        try:
            with self._connection() as conn:
                return list(conn.execute(sql, params).fetchall())
        except StoreUnavailable as exc:
            if not isinstance(exc.__cause__, psycopg.OperationalError):
                raise
        self._pool.check()  # drop the other pooled connections that died with it
        with self._connection() as conn:
            return list(conn.execute(sql, params).fetchall())

    # -- snapshots and relay positions ----------------------------------------------------

    def load_snapshot(
        self, workspace: str, event_id: str, projection: str, code_version: str
    ) -> Snapshot | None:
        rows = self._fetch(LOAD_SQL, (workspace, event_id, projection, code_version))
        if not rows:
            return None
        return Snapshot(workspace, event_id, projection, code_version, *rows[0])

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot``, replacing the projection's previous one; nothing if an erasure
        bumped its workspace's generation since its fold began (stores/postgres_snapshots.py)."""
        with granted(self.where), self._connection() as conn:
            save_snapshot(conn, snapshot)

    def snapshot_erasure_generation(self, workspace: str) -> int:
        """The workspace's erasure generation (0: never erased): a fold reads it before any
        event and hands it to its snapshot, whose save then stores nothing if it changed."""
        with granted(self.where):
            rows = self._fetch(GENERATION_SQL, (workspace,))
        return int(rows[0][0]) if rows else 0

    def delete_snapshots(self, workspace: str) -> int:
        """Forget every snapshot of ``workspace`` (an erasure: snapshots may hold personal
        values folded before it) and bump its erasure generation, in one transaction, so a fold
        begun before saves nothing; how many were deleted. The dead rows stay in the table's
        files until PostgreSQL reuses the space (docs/erasure.md)."""
        with granted(self.where), self._connection() as conn:
            return delete_snapshots(conn, workspace)

    def relay_positions(self, name: str) -> PostgresPositions:
        """Where ``auditbird relay`` keeps its position when it reads from this database."""
        return PostgresPositions(self._pool, name)

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._listener.close()
        self._pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _where(url: str) -> str:
    """The server and database a URL names, as written, without credentials or options."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2] or "localhost"
    return f"postgresql://{host}{parts.path}"


def _check_url(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        psycopg.conninfo.conninfo_to_dict(url)
    except (ValueError, psycopg.ProgrammingError) as exc:
        reason = " ".join(str(exc).split())
        raise ValueError(
            f"{_where(url)} is not a PostgreSQL URL libpq understands ({reason}); use "
            "postgresql://user:password@host:5432/dbname"
        ) from None


def connect_error(where: str, exc: BaseException) -> StoreUnavailable:
    """A connection failure, said plainly: what failed and what to check."""
    lines = str(exc).strip().splitlines()
    reason = lines[0].removeprefix("connection failed: ") if lines else type(exc).__name__
    lowered = str(exc).lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        advice = "check the user and password in the store URL"
    elif "does not exist" in lowered:
        advice = "create the database (createdb) or fix its name in the store URL"
    else:
        advice = "check that PostgreSQL runs there and the URL's host and port are right"
    return StoreUnavailable(f"cannot connect to PostgreSQL at {where}: {reason}; {advice}")
