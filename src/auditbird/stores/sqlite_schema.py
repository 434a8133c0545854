"""The SQLite store's schema: the migrations, in order, and what they need of SQLite.

Each entry of :data:`MIGRATIONS` moves a file from version i to i+1; one that has shipped is
never edited (files in the field have run it), a change is a new entry.
"""

from __future__ import annotations

import sqlite3

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TEXT_INDEX_MIGRATION",
    "has_trigram",
    "has_text_index",
    "statements",
]

# Each entry migrates the file from version i to i+1; never edit one that has shipped.
MIGRATIONS: list[str] = [
    # Indexes end at `timestamp`: the `uid` tie-break is sorted per timestamp by SQLite (a
    # partial sort), which keeps index keys short and writes fast.
    """
    CREATE TABLE audit_log (
        position  INTEGER PRIMARY KEY,  -- commit order: rowid, gap-free while writers serialise
        uid       TEXT    NOT NULL UNIQUE,
        workspace TEXT    NOT NULL,
        id        TEXT    NOT NULL,
        action    TEXT    NOT NULL,
        actor     TEXT    NOT NULL,
        targets   TEXT    NOT NULL DEFAULT '[]',
        metadata  TEXT,
        timestamp INTEGER NOT NULL,
        version   INTEGER NOT NULL DEFAULT 1,
        actor_id  TEXT GENERATED ALWAYS AS (json_extract(actor, '$.id')) VIRTUAL
    );
    CREATE INDEX audit_log_stream ON audit_log (workspace, id, timestamp);
    CREATE INDEX audit_log_time   ON audit_log (workspace, timestamp);
    CREATE INDEX audit_log_action ON audit_log (workspace, action, timestamp);
    CREATE INDEX audit_log_actor  ON audit_log (workspace, actor_id, timestamp);
    -- One row per (event, target) so target look-ups use an index instead of parsing JSON.
    -- Written by the store in the same transaction as the event (see write_rows).
    CREATE TABLE audit_target (
        position  INTEGER NOT NULL REFERENCES audit_log (position),
        workspace TEXT    NOT NULL,
        type      TEXT    NOT NULL,
        target_id TEXT    NOT NULL,
        timestamp INTEGER NOT NULL,
        uid       TEXT    NOT NULL
    );
    CREATE INDEX audit_target_id   ON audit_target (workspace, target_id, type, timestamp);
    CREATE INDEX audit_target_type ON audit_target (workspace, type, timestamp);
    """,
    # 2: a stream's history in commit order (replay, projections, snapshot tails) is a range scan.
    """
    CREATE INDEX audit_log_stream_position ON audit_log (workspace, id, position);
    """,
    # 3: the time index covers `action`, so the activity chart counts without reading rows.
    """
    DROP INDEX audit_log_time;
    CREATE INDEX audit_log_time ON audit_log (workspace, timestamp, action);
    """,
    # 4: a uid is unique per workspace, not across them: one workspace's uids must neither
    # collide with nor reveal another's (issue #10). SQLite cannot drop a column's UNIQUE, so
    # the table is rebuilt (positions kept: they are the commit order the relay follows).
    """
    CREATE TABLE audit_log_v4 (
        position  INTEGER PRIMARY KEY,
        uid       TEXT    NOT NULL,
        workspace TEXT    NOT NULL,
        id        TEXT    NOT NULL,
        action    TEXT    NOT NULL,
        actor     TEXT    NOT NULL,
        targets   TEXT    NOT NULL DEFAULT '[]',
        metadata  TEXT,
        timestamp INTEGER NOT NULL,
        version   INTEGER NOT NULL DEFAULT 1,
        actor_id  TEXT GENERATED ALWAYS AS (json_extract(actor, '$.id')) VIRTUAL,
        UNIQUE (workspace, uid)
    );
    INSERT INTO audit_log_v4
        (position, uid, workspace, id, action, actor, targets, metadata, timestamp, version)
    SELECT position, uid, workspace, id, action, actor, targets, metadata, timestamp, version FROM audit_log;
    DROP TABLE audit_log;
    ALTER TABLE audit_log_v4 RENAME TO audit_log;
    CREATE INDEX audit_log_stream ON audit_log (workspace, id, timestamp);
    CREATE INDEX audit_log_time   ON audit_log (workspace, timestamp, action);
    CREATE INDEX audit_log_action ON audit_log (workspace, action, timestamp);
    CREATE INDEX audit_log_actor  ON audit_log (workspace, actor_id, timestamp);
    CREATE INDEX audit_log_stream_position ON audit_log (workspace, id, position);
    """,
    # 5: a trigram index over the event id and the metadata, so a `text` search looks up
    # candidates instead of scanning the log (see sqlite_query.TRIGRAM). Kept by triggers in
    # the writer's transaction. `detail = none` (rowids only, no positions): ~25% cheaper to
    # write than a full index; a search asks for rows holding every trigram of the text and
    # re-checks each with the exact rule, so positions are not needed. Skipped where SQLite
    # has no trigram tokenizer (< 3.34): there, text searches scan, as before.
    """
    CREATE VIRTUAL TABLE IF NOT EXISTS audit_text USING fts5 (
        id, metadata, content = 'audit_log', content_rowid = 'position', tokenize = 'trigram',
        detail = none
    );
    INSERT INTO audit_text (audit_text) VALUES ('rebuild');
    CREATE TRIGGER IF NOT EXISTS audit_text_insert AFTER INSERT ON audit_log BEGIN
        INSERT INTO audit_text (rowid, id, metadata) VALUES (new.position, new.id, new.metadata);
    END;
    CREATE TRIGGER IF NOT EXISTS audit_text_delete AFTER DELETE ON audit_log BEGIN
        INSERT INTO audit_text (audit_text, rowid, id, metadata)
        VALUES ('delete', old.position, old.id, old.metadata);
    END;
    CREATE TRIGGER IF NOT EXISTS audit_text_update AFTER UPDATE OF id, metadata ON audit_log BEGIN
        INSERT INTO audit_text (audit_text, rowid, id, metadata)
        VALUES ('delete', old.position, old.id, old.metadata);
        INSERT INTO audit_text (rowid, id, metadata) VALUES (new.position, new.id, new.metadata);
    END;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
TEXT_INDEX_MIGRATION = 5  # needs FTS5's trigram tokenizer (SQLite >= 3.34)


def has_trigram() -> bool:
    """Whether this Python's SQLite can build the trigram text index."""
    if sqlite3.sqlite_version_info < (3, 34, 0):
        return False
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5 (x, tokenize = 'trigram')")
    except sqlite3.Error:  # built without FTS5
        return False
    finally:
        conn.close()
    return True


def has_text_index(conn: sqlite3.Connection) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_text'")
    return found.fetchone() is not None


def statements(script: str) -> list[str]:
    """Split a migration into statements (``sqlite3.complete_statement`` knows triggers)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
