"""The PostgreSQL store's schema: versioned migrations, as the SQLite store's.

``auditbird_meta`` holds ``schema_version``; each entry of :data:`MIGRATIONS` takes the
database from version *i* to *i + 1* and never changes once shipped. :func:`migrate` runs in
the caller's open transaction (the store's own, or the application's for ``auditbird.emit``)
under an advisory lock, so two processes opening a fresh database at once migrate it once.

JSON columns are ``text``, not ``jsonb``: the store hands back exactly the JSON strings the
codec wrote (jsonb would reorder keys and cannot hold ``\\u0000``); the look-ups that need a
field have their own column (``actor_id``) or table (``audit_target``), as in SQLite.

Free text (``text=``) matches ASCII letters case-insensitively and every other character
exactly (owners.md): ``ILIKE`` and ``lower()`` under most collations fold Unicode too, so the
searched expression is :data:`ASCII_FOLD` (``lower`` under the "C" collation: A-Z only),
matched with ``LIKE``. Its ``pg_trgm`` index is opt-in (:func:`ensure_text_index`,
``PostgresStore(url, text_index=True)``): it costs ~45% of a batch's insert time
(bench/postgres.py), so by default a text search reads the workspace's rows newest first until
it has its page (fast for common words, a full scan for rare ones).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._errors import StoreUnavailable

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "migrate",
    "schema_version",
    "ascii_fold",
    "ASCII_FOLD",
    "TEXT_INDEX",
    "ensure_text_index",
    "has_text_index",
]

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = _UPPER.lower()


def ascii_fold(sql_expr: str) -> str:
    """SQL lower-casing only A-Z: ``lower()`` under the "C" collation folds ASCII letters alone
    (under the database's own collation it would fold É to é too), byte by byte, ~40x faster
    than ``translate`` of the alphabet (which schema 1 used)."""
    return f'lower(({sql_expr}) COLLATE "C")'


#: The text a ``text=`` search looks in: the subject id and the metadata JSON, ASCII-folded.
#: The two are joined by a newline for one trigram index; the query re-checks each alone.
ASCII_FOLD = ascii_fold("id || E'\\n' || coalesce(metadata, '')")
# Schema 1's index expression, kept as shipped (migration 2 drops that index).
_SCHEMA_1_FOLD = f"translate((id || E'\\n' || coalesce(metadata, '')), '{_UPPER}', '{_LOWER}')"

MIGRATIONS: list[str] = [
    f"""
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE TABLE audit_log (
        position  bigint  PRIMARY KEY,  -- commit order, gap-free: see stores/postgres_write.py
        uid       text    COLLATE "C" NOT NULL,  -- byte order, as SQLite sorts the tie-break
        workspace text    NOT NULL,
        id        text    NOT NULL,
        action    text    NOT NULL,
        actor     text    NOT NULL,
        targets   text    NOT NULL DEFAULT '[]',
        metadata  text,
        timestamp bigint  NOT NULL,
        version   integer NOT NULL DEFAULT 1,
        actor_id  text    NOT NULL DEFAULT '',  -- actor's id, written by the store
        CONSTRAINT audit_log_workspace_uid UNIQUE (workspace, uid)
    );
    CREATE INDEX audit_log_stream ON audit_log (workspace, id, timestamp, uid);
    CREATE INDEX audit_log_stream_position ON audit_log (workspace, id, position);
    CREATE INDEX audit_log_time ON audit_log (workspace, timestamp, uid);
    CREATE INDEX audit_log_action ON audit_log (workspace, action, timestamp, uid);
    CREATE INDEX audit_log_actor ON audit_log (workspace, actor_id, timestamp, uid);
    CREATE INDEX audit_log_text ON audit_log USING gin ({_SCHEMA_1_FOLD} gin_trgm_ops);
    -- One row per distinct (event, target), written in the same statement as the event.
    CREATE TABLE audit_target (
        position  bigint NOT NULL,  -- audit_log.position (no FK: written in the same statement)
        workspace text   NOT NULL,
        type      text   NOT NULL,
        target_id text   NOT NULL,
        timestamp bigint NOT NULL,
        uid       text   COLLATE "C" NOT NULL
    );
    CREATE INDEX audit_target_id ON audit_target (workspace, target_id, type, timestamp, uid);
    CREATE INDEX audit_target_type ON audit_target (workspace, type, timestamp, uid);
    CREATE INDEX audit_target_position ON audit_target (position);
    CREATE TABLE auditbird_snapshot (
        workspace     text   NOT NULL,
        stream        text   NOT NULL,
        projection    text   NOT NULL,
        code_version  text   NOT NULL,
        position      bigint NOT NULL,
        revision      bigint NOT NULL,
        max_timestamp bigint NOT NULL,
        state         text   NOT NULL,
        created_at    bigint NOT NULL,
        PRIMARY KEY (workspace, stream, projection)
    );
    CREATE TABLE auditbird_relay_position (
        name       text   PRIMARY KEY,
        position   bigint NOT NULL,
        updated_at bigint NOT NULL
    );
    """,
    # 2: the trigram index becomes opt-in (ensure_text_index): maintaining it took ~45% of a
    # batch's insert time. Text searches stay correct without it (the same LIKE, unindexed).
    # And the single publish becomes one call, sent alone in autocommit (its own transaction):
    # BEGIN, LOCK, INSERT and COMMIT in a pipeline cost ~20% more. In READ COMMITTED each
    # statement of a VOLATILE function takes a new snapshot, so max(position) is read after
    # the lock, as the two-statement form does (stores/postgres_write.py).
    # Its search_path is pinned to the schema it is made in (pg_temp last): a caller whose own
    # search_path finds another audit_log first (a schema, a temp table) still writes here.
    """
    DROP INDEX IF EXISTS audit_log_text;
    DO $migration$
    BEGIN
    EXECUTE format($create$
    CREATE FUNCTION auditbird_append_one(
        p_uid text, p_workspace text, p_id text, p_action text, p_actor text, p_targets text,
        p_metadata text, p_timestamp bigint, p_version integer, p_actor_id text,
        p_target_types text[], p_target_ids text[]
    ) RETURNS integer LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, %I, pg_temp AS $$
    DECLARE
        stored bigint;
    BEGIN
        LOCK TABLE audit_log IN EXCLUSIVE MODE;
        INSERT INTO audit_log (position, uid, workspace, id, action, actor, targets, metadata,
                               timestamp, version, actor_id)
        SELECT coalesce(max(position), 0) + 1, p_uid, p_workspace, p_id, p_action, p_actor,
               p_targets, p_metadata, p_timestamp, p_version, p_actor_id
        FROM audit_log
        ON CONFLICT (workspace, uid) DO NOTHING
        RETURNING position INTO stored;
        IF stored IS NULL THEN
            RETURN 0;  -- the uid is taken: the first copy stays
        END IF;
        INSERT INTO audit_target (position, workspace, type, target_id, timestamp, uid)
        SELECT stored, p_workspace, t.type, t.target_id, p_timestamp, p_uid
        FROM unnest(p_target_types, p_target_ids) AS t(type, target_id);
        PERFORM pg_notify('auditbird_commit', '');
        RETURN 1;
    END
    $$
    $create$, current_schema());
    END
    $migration$;
    """,
    # 3: each workspace's erasure generation, as the SQLite snapshot file keeps it
    # (snapshots.py): an erasure bumps it in its deletion's transaction, and a snapshot's save
    # stores nothing unless it is still the one its fold read before any event
    # (PostgresStore.save_snapshot). No row: generation 0.
    """
    CREATE TABLE auditbird_snapshot_erasure (
        workspace  text   PRIMARY KEY,
        generation bigint NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

#: The opt-in trigram index over :data:`ASCII_FOLD`, which ``text=`` searches then use.
TEXT_INDEX = f"CREATE INDEX IF NOT EXISTS audit_log_text ON audit_log USING gin ({ASCII_FOLD} gin_trgm_ops)"

# pg_advisory_xact_lock key: "auditbird" folded into a bigint, so migrations run one at a time.
_MIGRATION_LOCK = 0x617564697462


def schema_version(conn: Any, *, meta: str = "auditbird_meta") -> int:
    """The schema version recorded in the ``meta`` table of ``conn``'s database (0: none yet)."""
    # pg_class through SQL, not to_regclass(): a catalog cache is not refreshed by taking an
    # advisory lock, so after waiting for another migrator it could still say "missing".
    (exists,) = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relname = %s "
        "AND relnamespace = current_schema()::regnamespace)",
        (meta,),
    ).fetchone()
    if not exists:
        return 0
    from psycopg import sql

    found = conn.execute(
        sql.SQL("SELECT value FROM {} WHERE key = 'schema_version'").format(sql.Identifier(meta))
    ).fetchone()
    return int(found[0]) if found else 0


def apply_migrations(
    conn: Any,
    migrations: Sequence[str],
    *,
    meta: str,
    lock: int,
    too_new: Callable[[int], StoreUnavailable],
    denied: Callable[[int, str], StoreUnavailable],
) -> None:
    """Bring a versioned set of tables to ``len(migrations)`` inside the caller's transaction:
    the event tables (:func:`migrate`) and the service's key tables share this.

    One query when current; otherwise under the advisory lock ``lock`` (processes starting at
    once migrate once), re-reading the version after the wait. ``too_new(version)`` and
    ``denied(version, server message)`` make the errors that say what to do."""
    target = len(migrations)
    current = schema_version(conn, meta=meta)
    if current == target:
        return  # the common case: one query, no lock
    if current > target:
        raise too_new(current)
    import psycopg
    from psycopg import sql

    table = sql.Identifier(meta)
    try:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
        current = schema_version(conn, meta=meta)  # another process may have migrated meanwhile
        if current > target:
            raise too_new(current)
        if current == target:
            return
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value text NOT NULL)").format(table)
        )
        for script in migrations[current:]:
            conn.execute(script)  # a migration is one simple-protocol script (no parameters)
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ).format(table),
            (str(target),),
        )
    except psycopg.errors.InsufficientPrivilege as exc:
        raise denied(current, exc.diag.message_primary or str(exc)) from exc


def migrate(conn: Any, *, where: str = "the database") -> None:
    """Bring ``conn``'s database to :data:`SCHEMA_VERSION` inside the caller's transaction.

    A schema newer than this code, or no right to create it: :class:`StoreUnavailable`
    saying what to do."""

    def denied(current: int, message: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"{where} has no auditbird schema (version {current}, needs {SCHEMA_VERSION}) and this role "
            f"may not create it ({message}): connect once as the database owner to "
            "create the tables, or GRANT CREATE ON SCHEMA public (and the pg_trgm extension) to this role"
        )

    apply_migrations(
        conn,
        MIGRATIONS,
        meta="auditbird_meta",
        lock=_MIGRATION_LOCK,
        too_new=lambda current: _too_new(where, current),
        denied=denied,
    )


def has_text_index(conn: Any) -> bool:
    """Whether the trigram index for ``text=`` searches exists."""
    (found,) = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relname = 'audit_log_text' "
        "AND relnamespace = current_schema()::regnamespace)"
    ).fetchone()
    return bool(found)


def ensure_text_index(conn: Any, *, where: str = "the database") -> None:
    """Create the trigram index for ``text=`` searches, if missing, in the caller's transaction.

    Building it reads the whole table and blocks writers meanwhile (seconds per million events);
    every later write then maintains it."""
    if has_text_index(conn):
        return
    import psycopg

    try:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(TEXT_INDEX)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise StoreUnavailable(
            f"{where}: this role may not create the text index ({exc.diag.message_primary}): connect "
            "once as the table owner with text_index=true, or leave text_index off (text searches "
            "then scan)"
        ) from exc


def _too_new(where: str, current: int) -> StoreUnavailable:
    return StoreUnavailable(
        f"{where} has auditbird schema version {current}, newer than this auditbird understands "
        f"({SCHEMA_VERSION}); upgrade auditbird (pip install -U auditbird)"
    )
