"""The service's keys in PostgreSQL (``KeyStore("postgresql://...")``): shared by every replica.

``auditbird serve --store postgresql://...`` keeps its keys in the same database as the events;
``--keys postgresql://...`` (``AUDITBIRD_KEYS``) puts them in one for any store (events in
Tinybird, say). Tables, versioned apart from the event store's (a database may hold only keys):

- ``auditbird_api_key``: as the SQLite file's ``api_key`` (SHA-256 of each secret, never the secret);
- ``auditbird_idempotency``: one row per (workspace, Idempotency-Key), primary key on both, so
  replicas racing on a key insert one row (``ON CONFLICT DO NOTHING``) and both answer it;
- ``auditbird_service_secret``: the uid secret and the viewer-link secret, each made once per
  database (``INSERT ... ON CONFLICT DO NOTHING``, then read what won);
- ``auditbird_service_meta``: ``schema_version`` of these tables, migrated as
  :mod:`auditbird.stores.postgres_schema` migrates the event tables.

A revoke through one replica is seen by the others within ``cache_seconds`` (1 s by default):
the TTL of each replica's cache of verified keys is the bound, no notification is involved.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .._errors import StoreUnavailable
from ..stores.postgres_schema import apply_migrations
from ..stores.postgres_schema import schema_version as _schema_version
from .keys import IDEMPOTENCY_TTL_MS, ApiKey, KeyRow, KeyStore, link_key

__all__ = ["PostgresKeyStore", "MIGRATIONS", "SCHEMA_VERSION"]

T = TypeVar("T")
log = logging.getLogger("auditbird.service")

MIGRATIONS: list[str] = [
    """
    CREATE TABLE auditbird_api_key (
        key_id     text   PRIMARY KEY,
        hash       text   NOT NULL,  -- sha256(secret), hex; the secret itself is never stored
        workspace  text   NOT NULL,
        scope      text   NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
        name       text   NOT NULL DEFAULT '',
        rate       double precision,  -- requests per second; NULL: the server's default
        created_at bigint NOT NULL,
        revoked_at bigint
    );
    CREATE TABLE auditbird_idempotency (
        workspace  text    NOT NULL,
        key        text    NOT NULL,
        request    text    NOT NULL,  -- sha256 of the request body: same key, other body -> 422
        status     integer NOT NULL,
        body       bytea   NOT NULL,
        created_at bigint  NOT NULL,
        PRIMARY KEY (workspace, key)
    );
    CREATE INDEX auditbird_idempotency_created ON auditbird_idempotency (created_at);
    CREATE TABLE auditbird_service_secret (
        name       text   PRIMARY KEY,  -- 'uid' (derived uids), 'viewer_link' (link HMAC)
        secret     text   NOT NULL,
        created_at bigint NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

# pg_advisory_xact_lock key ("abkeys"), apart from the event store's: migrations run one at a time.
_MIGRATION_LOCK = 0x61626B657973
_OPTIONS = {"pool_size": int, "connect_timeout": float}  # auditbird's; the rest go to libpq


class PostgresKeyStore(KeyStore):
    """API keys, idempotency records and the service's secrets in a PostgreSQL database.

    >>> keys = PostgresKeyStore("postgresql://app@db.internal/app")   # doctest: +SKIP
    """

    def __init__(self, url: str, *, cache_seconds: float = 1.0) -> None:
        super().__init__(url, cache_seconds=cache_seconds)
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise StoreUnavailable(
                "keys in PostgreSQL need psycopg: pip install 'auditbird[postgres]'"
            ) from exc
        self._url, options = _libpq_url(url)
        self.where = _where(url)
        self.label = "keys in its PostgreSQL database"
        timeout = max(1, round(options.get("connect_timeout", 10.0)))
        self._server_secret: bytes | None = None
        try:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=timeout)
        except psycopg.Error as exc:
            from ..stores.postgres import connect_error

            raise connect_error(self.where, exc) from exc
        with conn:
            try:
                with conn.transaction():
                    _migrate(conn, self.where)
            except psycopg.Error as exc:
                raise StoreUnavailable(
                    f"cannot prepare the auditbird key tables in {self.where}: {exc}"
                ) from exc
        self._pool = ConnectionPool(
            self._url,
            min_size=1,
            max_size=int(options.get("pool_size", 4)),
            kwargs={"autocommit": True, "connect_timeout": timeout},
            # Requests wait at most this long for a connection: an unreachable database answers
            # 503 in seconds, it does not hold every request for the pool's default 30 s.
            timeout=float(min(timeout, 5)),
            open=False,
            name=f"auditbird keys {self.where}",
        )
        self._pool.open(wait=True, timeout=float(timeout))

    def _run(self, work: Callable[[Any], T], *, retry: bool = True) -> T:
        """``work(conn)`` on a pooled connection. A connection the server dropped (a restart, an
        idle timeout) is replaced and the work tried once more when it is safe to repeat."""
        import psycopg

        for attempt in (1, 2):
            try:
                with self._pool.connection() as conn:
                    return work(conn)
            except psycopg.OperationalError as exc:
                if retry and attempt == 1:
                    self._pool.check()  # drop every idle connection the server closed too
                    continue
                # Answered (503) to callers who may hold no key: no host, database or libpq text
                # in it; the operator's log has them.
                log.warning("keys database %s unavailable: %s", self.where, exc)
                raise StoreUnavailable("the keys database is unavailable; retry") from exc
        raise AssertionError("unreachable")

    # -- keys -------------------------------------------------------------------------------

    def _insert_key(self, key: ApiKey, hashed: str) -> None:
        self._run(
            lambda conn: conn.execute(
                "INSERT INTO auditbird_api_key (key_id, hash, workspace, scope, name, rate, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (key.key_id, hashed, key.workspace, key.scope, key.name, key.rate, key.created_at),
            ),
            retry=False,  # committed before the connection dropped? a retry would say "duplicate"
        )

    def _fetch_key(self, key_id: str) -> KeyRow | None:
        row = self._run(
            lambda conn: conn.execute(
                "SELECT key_id, workspace, scope, name, rate, created_at, revoked_at, hash "
                "FROM auditbird_api_key WHERE key_id = %s",
                (key_id,),
            ).fetchone()
        )
        return tuple(row) if row is not None else None

    def _revoke_key(self, key_id: str, at: int) -> bool:
        count = self._run(
            lambda conn: (
                conn.execute(
                    "UPDATE auditbird_api_key SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL",
                    (at, key_id),
                ).rowcount
            )
        )
        return bool(count == 1)

    def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        sql = "SELECT key_id, workspace, scope, name, rate, created_at, revoked_at FROM auditbird_api_key"
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL"
        rows = self._run(lambda conn: conn.execute(sql + " ORDER BY created_at, key_id").fetchall())
        return [ApiKey(*r) for r in rows]

    # -- idempotency records ----------------------------------------------------------------

    def idempotent_get(self, workspace: str, key: str) -> tuple[str, int, bytes] | None:
        row = self._run(
            lambda conn: conn.execute(
                "SELECT request, status, body FROM auditbird_idempotency WHERE workspace = %s AND key = %s",
                (workspace, key),
            ).fetchone()
        )
        return (row[0], row[1], bytes(row[2])) if row else None

    def idempotent_put(
        self, workspace: str, key: str, request: str, status: int, body: bytes
    ) -> tuple[str, int, bytes]:
        now = int(time.time() * 1000)

        def put(conn: Any) -> None:
            # Autocommit, one statement each: a twin inserting the same key on another replica
            # makes this INSERT wait for its commit and then do nothing; the SELECT below, a new
            # statement with a new snapshot, then sees the twin's row.
            conn.execute(
                "INSERT INTO auditbird_idempotency (workspace, key, request, status, body, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (workspace, key) DO NOTHING",
                (workspace, key, request, status, body, now),
            )
            conn.execute(  # prune a few old ones on each write
                "DELETE FROM auditbird_idempotency WHERE ctid = ANY (ARRAY("
                "SELECT ctid FROM auditbird_idempotency WHERE created_at < %s LIMIT 100))",
                (now - IDEMPOTENCY_TTL_MS,),
            )

        self._run(put)
        found = self.idempotent_get(workspace, key)
        assert found is not None
        return found

    def forget_idempotency(self, workspace: str) -> int:
        # The deleted rows stay in the table's free space (and the WAL) until PostgreSQL reuses
        # it: docs/erasure.md says so; no VACUUM FULL of a table every request writes.
        count: int = self._run(
            lambda conn: (
                conn.execute("DELETE FROM auditbird_idempotency WHERE workspace = %s", (workspace,)).rowcount
            )
        )
        return count

    # -- secrets ----------------------------------------------------------------------------

    def _secret(self, name: str, make: Callable[[], str]) -> str:
        def read_or_create(conn: Any) -> str:
            sql = "SELECT secret FROM auditbird_service_secret WHERE name = %s"
            row = conn.execute(sql, (name,)).fetchone()
            if row is None:  # first use in this database: whoever inserts first wins, all read it
                conn.execute(
                    "INSERT INTO auditbird_service_secret (name, secret, created_at) VALUES (%s, %s, %s) "
                    "ON CONFLICT (name) DO NOTHING",
                    (name, make(), int(time.time() * 1000)),
                )
                row = conn.execute(sql, (name,)).fetchone()
            return str(row[0])

        return self._run(read_or_create)

    def server_secret(self) -> bytes:
        if self._server_secret is None:  # never changes once made: read once per process
            self._server_secret = bytes.fromhex(self._secret("uid", lambda: secrets.token_hex(32)))
        return self._server_secret

    def link_secret(self) -> bytes:
        return link_key(self._secret("viewer_link", lambda: secrets.token_urlsafe(32)))

    def rotate_link_secret(self) -> None:
        self._run(
            lambda conn: conn.execute(
                "INSERT INTO auditbird_service_secret (name, secret, created_at) "
                "VALUES ('viewer_link', %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at",
                (secrets.token_urlsafe(32), int(time.time() * 1000)),
            )
        )

    def close(self) -> None:
        self._pool.close()


# -- schema -------------------------------------------------------------------------------


def schema_version(conn: Any) -> int:
    """The key tables' schema version in ``conn``'s database (0: none yet)."""
    return _schema_version(conn, meta="auditbird_service_meta")


def _migrate(conn: Any, where: str) -> None:
    """Bring the key tables to :data:`SCHEMA_VERSION` in the caller's transaction, under an
    advisory lock (replicas starting at once migrate once): the event store's runner."""

    def denied(current: int, message: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"{where} has no auditbird key tables (version {current}, needs {SCHEMA_VERSION}) and this "
            f"role may not create them ({message}): run `auditbird keys list --keys "
            "<url>` once as the database owner to create them, or GRANT CREATE ON SCHEMA public to this role"
        )

    apply_migrations(
        conn,
        MIGRATIONS,
        meta="auditbird_service_meta",
        lock=_MIGRATION_LOCK,
        too_new=lambda current: _too_new(where, current),
        denied=denied,
    )


def _too_new(where: str, current: int) -> StoreUnavailable:
    return StoreUnavailable(
        f"{where} has auditbird key tables of schema version {current}, newer than this auditbird "
        f"understands ({SCHEMA_VERSION}); upgrade auditbird (pip install -U auditbird) on every replica"
    )


def _where(url: str) -> str:
    """The server and database a URL names, without credentials or options."""
    parts = urlsplit(url)
    return f"postgresql://{parts.netloc.rpartition('@')[2] or 'localhost'}{parts.path}"


def _why(query: list[tuple[str, str]]) -> str:
    """What is wrong with a URL libpq refused, in words that quote no value of it: unknown
    query parameter names (checked against libpq's own list), else where to look."""
    import psycopg

    known = {o.keyword.decode() for o in psycopg.pq.Conninfo.get_defaults()}
    unknown = sorted({k for k, _ in query} - known)
    if unknown:
        return "unknown query parameter " + ", ".join(repr(k) for k in unknown)
    return "check the port, and the percent-escapes (%XX) of the user, password and values"


def _libpq_url(url: str) -> tuple[str, dict[str, float]]:
    """The URL libpq is given (auditbird's own options taken out) and those options."""
    import psycopg

    parts = urlsplit(url)
    libpq, ours = [], {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OPTIONS:
            try:
                ours[key] = float(_OPTIONS[key](value))
            except ValueError:
                raise ValueError(f"{key}={value!r} in the keys URL must be a number") from None
        else:
            libpq.append((key, value))
    clean = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(libpq, quote_via=quote), ""))
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        psycopg.conninfo.conninfo_to_dict(clean)
    except (ValueError, psycopg.ProgrammingError):
        # Not libpq's text: it quotes the token it choked on, which may be the password.
        raise ValueError(
            f"{_where(url)} is not a PostgreSQL URL libpq understands ({_why(libpq)}); "
            "use postgresql://user:password@host:5432/dbname"
        ) from None
    if ours.get("pool_size", 1) < 1:
        raise ValueError("pool_size in the keys URL must be at least 1")
    return clean, ours
