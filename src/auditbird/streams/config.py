"""Log streams configured per workspace, kept in ``<store>.streams.db`` beside a SQLite store.

    registry = StreamRegistry.for_store("sqlite:///audit.db")
    registry.add("siem", workspace="acme", kind="webhook", options={"url": "https://..."})

The file holds the streams, their delivery status and their dead letters; it is created 0600
because a webhook's signing secrets must be kept usable (they sign, so they cannot be hashed).
Each stream's delivery *position* is the outbox relay's: a row named ``stream:<id>`` in the
store's ``auditbird_relay_position`` table, saved after every acknowledged batch.
"""

from __future__ import annotations

import base64
import builtins
import json
import secrets
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..event import now_ms
from ..row import Row, row_from_json, row_to_json
from ..stores import redact_url
from .filter import StreamFilter

__all__ = [
    "Stream",
    "DeadLetter",
    "StreamExists",
    "StreamRegistry",
    "KINDS",
    "new_secret",
    "streams_path_for",
]

KINDS = ("webhook", "syslog", "ndjson", "otlp")
API, OPERATOR, UNKNOWN = "api", "operator", "unknown"  # a stream's origin
_NAME_MAX = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    options TEXT NOT NULL,
    filter TEXT NOT NULL,
    max_attempts INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    last_delivery_at INTEGER,
    last_error TEXT,
    last_error_at INTEGER,
    paused INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    dead_lettered INTEGER NOT NULL DEFAULT 0,
    UNIQUE (workspace, name)
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id INTEGER NOT NULL,
    uid TEXT NOT NULL,
    event TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_stream ON dead_letters (stream_id, id);
"""

# Columns added after the first release of the file: (name, definition), added when missing.
# ``failures`` and ``dead_lettered`` only ever grow: /metrics exposes them as counters.
_ADDED_COLUMNS = (
    ("paused", "INTEGER NOT NULL DEFAULT 0"),
    ("failures", "INTEGER NOT NULL DEFAULT 0"),
    ("dead_lettered", "INTEGER NOT NULL DEFAULT 0"),
    # Who added the stream: "api" (an admin key), "operator" (the CLI or the library), or
    # "unknown" for rows older than this column that no stored detail tells apart.
    ("origin", f"TEXT NOT NULL DEFAULT '{UNKNOWN}'"),
)
# Rows written before ``origin`` existed: a row the API marked restricted came from it; an NDJSON
# stream or a CA file only the operator can add (the API refuses both). The rest stay
# "unknown", and an unknown origin is restricted like the API's (fail closed): an API stream
# added before the egress rule existed carries no mark and must not reach private addresses.
_ORIGIN_OF_OLD_ROWS = (
    "UPDATE streams SET origin = CASE "
    "WHEN json_extract(options, '$.restricted') THEN ? "
    "WHEN kind = 'ndjson' OR json_extract(options, '$.ca_file') IS NOT NULL THEN ? "
    "ELSE ? END"
)


class StreamExists(ValueError):
    """The workspace already has a stream of that name (the service answers 409)."""


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def streams_path_for(store_url: str) -> Path:
    if not store_url.startswith("sqlite:///"):
        raise ValueError(
            f"log streams read a SQLite store's commit positions; {store_url!r} is not one "
            "(relay it to SQLite first, or run the streams on the SQLite file events are written to)"
        )
    return Path(store_url[len("sqlite:///") :] + ".streams.db")


@dataclass(frozen=True)
class Stream:
    id: int
    workspace: str
    name: str
    kind: str
    options: dict[str, Any]
    filter: StreamFilter
    max_attempts: int
    created_at: int
    delivered: int = 0
    last_delivery_at: int | None = None
    last_error: str | None = None
    last_error_at: int | None = None
    dead_letters: int = field(default=0)
    paused: bool = False
    failures: int = 0  # failed delivery attempts, ever
    dead_lettered: int = 0  # events turned into dead letters, ever (replayed ones included)
    origin: str = UNKNOWN  # API, OPERATOR or UNKNOWN (a row older than the column)

    @property
    def restricted(self) -> bool:
        """Whether every connection must pass the egress rule (``AUDITBIRD_STREAM_HOSTS``):
        all but the operator's own streams, whenever they were added."""
        return self.origin != OPERATOR or bool(self.options.get("restricted"))

    @property
    def position_name(self) -> str:
        """The relay position's key: by id, so a stream re-added under a name starts afresh."""
        return f"stream:{self.id}"

    def public_options(self) -> dict[str, Any]:
        """The options without secrets (listings, logs)."""
        shown = {k: ("***" if "secret" in k else v) for k, v in self.options.items()}
        if "url" in shown:
            shown["url"] = redact_url(shown["url"])
        return shown


@dataclass(frozen=True)
class DeadLetter:
    id: int
    stream_id: int
    row: Row
    error: str
    attempts: int
    created_at: int


class StreamRegistry:
    """The streams of one store (every workspace); each method is one short transaction."""

    def __init__(self, path: str | Path) -> None:
        # Imported here: the service package imports this one (its /v1/streams routes).
        from ..service.private_files import connect_private

        self.path = Path(path)
        self._conn = connect_private(self.path)
        self._conn.execute("PRAGMA busy_timeout = 30000")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.executescript(_SCHEMA)
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")  # two processes opening an old file: one upgrades
            present = {r[1] for r in self._conn.execute("PRAGMA table_info(streams)")}
            for column, definition in _ADDED_COLUMNS:
                if column not in present:  # names and definitions are the constants above
                    self._conn.execute(f"ALTER TABLE streams ADD COLUMN {column} {definition}")
            if "origin" not in present:
                self._conn.execute(_ORIGIN_OF_OLD_ROWS, (API, OPERATOR, UNKNOWN))

    @classmethod
    def for_store(cls, store_url: str) -> StreamRegistry:
        return cls(streams_path_for(store_url))

    # -- streams ---------------------------------------------------------------------------

    def add(
        self,
        name: str,
        *,
        workspace: str,
        kind: str,
        options: dict[str, Any],
        filter: StreamFilter | None = None,
        max_attempts: int = 5,
        origin: str = OPERATOR,
    ) -> Stream:
        if origin not in (API, OPERATOR):
            raise ValueError(f"stream origin {origin!r}: use {API!r} or {OPERATOR!r}")
        if not name or len(name) > _NAME_MAX or not all(c.isalnum() or c in "-_." for c in name):
            raise ValueError(f"stream name {name!r}: use 1-{_NAME_MAX} letters, digits, '-', '_' or '.'")
        if kind not in KINDS:
            raise ValueError(f"stream kind {kind!r}: use one of {', '.join(KINDS)}")
        if not 1 <= max_attempts <= 100:
            raise ValueError("max_attempts: use 1 to 100 (deliveries refused before a dead letter)")
        try:
            cur = self._conn.execute(
                "INSERT INTO streams (workspace, name, kind, options, filter, max_attempts, created_at, "
                "origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    workspace,
                    name,
                    kind,
                    json.dumps(options),
                    (filter or StreamFilter()).to_json(),
                    max_attempts,
                    now_ms(),
                    API if options.get("restricted") else origin,
                ),
            )
        except sqlite3.IntegrityError:
            raise StreamExists(
                f"workspace {workspace!r} already has a stream named {name!r}; "
                "remove it first or pick another name"
            ) from None
        stream = self.get_by_id(int(cur.lastrowid or 0))
        assert stream is not None
        return stream

    def list(self, workspace: str | None = None) -> list[Stream]:
        sql = _SELECT + ("WHERE s.workspace = ? " if workspace is not None else "") + "ORDER BY s.id"
        params: tuple[Any, ...] = (workspace,) if workspace is not None else ()
        return [_stream(r) for r in self._conn.execute(sql, params)]

    def get(self, workspace: str, name: str) -> Stream:
        row = self._conn.execute(
            _SELECT + "WHERE s.workspace = ? AND s.name = ?", (workspace, name)
        ).fetchone()
        if row is None:
            raise KeyError(
                f"workspace {workspace!r} has no stream named {name!r}; see `auditbird streams list`"
            )
        return _stream(row)

    def get_by_id(self, stream_id: int) -> Stream | None:
        row = self._conn.execute(_SELECT + "WHERE s.id = ?", (stream_id,)).fetchone()
        return _stream(row) if row else None

    def remove(self, workspace: str, name: str) -> None:
        stream = self.get(workspace, name)
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("DELETE FROM dead_letters WHERE stream_id = ?", (stream.id,))
            self._conn.execute("DELETE FROM streams WHERE id = ?", (stream.id,))

    def set_paused(self, workspace: str, name: str, paused: bool) -> Stream:
        """Pause (a following runner stops the stream within its reload interval; the position
        stays) or resume (delivery continues from that position: nothing is skipped)."""
        stream = self.get(workspace, name)
        self._conn.execute("UPDATE streams SET paused = ? WHERE id = ?", (int(paused), stream.id))
        return self.get(workspace, name)

    def rotate_secret(self, workspace: str, name: str, *, grace_ms: int, secret: str | None = None) -> str:
        """A new signing secret; the old one keeps signing beside it until ``grace_ms`` from now."""
        stream = self.get(workspace, name)
        if stream.kind != "webhook":
            raise ValueError(f"stream {name!r} is a {stream.kind} stream; only webhooks have a secret")
        options = dict(stream.options)
        fresh = secret or new_secret()
        options["old_secret"] = options["secret"]
        options["old_secret_until"] = now_ms() + grace_ms
        options["secret"] = fresh
        self._conn.execute("UPDATE streams SET options = ? WHERE id = ?", (json.dumps(options), stream.id))
        return fresh

    # -- delivery status -------------------------------------------------------------------

    def record_delivery(self, stream_id: int, count: int) -> None:
        self._conn.execute(
            "UPDATE streams SET delivered = delivered + ?, last_delivery_at = ?, last_error = NULL "
            "WHERE id = ?",
            (count, now_ms(), stream_id),
        )

    def record_failure(self, stream_id: int, error: str) -> None:
        self._conn.execute(
            "UPDATE streams SET last_error = ?, last_error_at = ?, failures = failures + 1 WHERE id = ?",
            (error[:1_000], now_ms(), stream_id),
        )

    # -- dead letters ----------------------------------------------------------------------

    def dead_letter(self, stream_id: int, rows: builtins.list[Row], error: str, attempts: int) -> None:
        at = now_ms()
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "INSERT INTO dead_letters (stream_id, uid, event, error, attempts, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(stream_id, r.uid, json.dumps(row_to_json(r)), error[:1_000], attempts, at) for r in rows],
            )
            self._conn.execute(
                "UPDATE streams SET dead_lettered = dead_lettered + ? WHERE id = ?", (len(rows), stream_id)
            )

    def dead_letters(
        self, stream_id: int, limit: int = 1_000, *, after_id: int = 0
    ) -> builtins.list[DeadLetter]:
        """Oldest first; ``after_id`` pages on from the last one seen."""
        return [
            DeadLetter(i, s, row_from_json(json.loads(e)), err, a, c)
            for i, s, e, err, a, c in self._conn.execute(
                "SELECT id, stream_id, event, error, attempts, created_at FROM dead_letters "
                "WHERE stream_id = ? AND id > ? ORDER BY id LIMIT ?",
                (stream_id, after_id, limit),
            )
        ]

    def forget_dead_letters(self, ids: builtins.list[int]) -> None:
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("DELETE FROM dead_letters WHERE id = ?", [(i,) for i in ids])

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> StreamRegistry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_SELECT = (
    "SELECT s.id, s.workspace, s.name, s.kind, s.options, s.filter, s.max_attempts, s.created_at, "
    "s.delivered, s.last_delivery_at, s.last_error, s.last_error_at, "
    "(SELECT count(*) FROM dead_letters d WHERE d.stream_id = s.id), s.paused, s.failures, s.dead_lettered, "
    "s.origin FROM streams AS s "
)


def _stream(r: tuple[Any, ...]) -> Stream:
    return Stream(
        id=r[0],
        workspace=r[1],
        name=r[2],
        kind=r[3],
        options=json.loads(r[4]),
        filter=StreamFilter.from_json(r[5]),
        max_attempts=r[6],
        created_at=r[7],
        delivered=r[8],
        last_delivery_at=r[9],
        last_error=r[10],
        last_error_at=r[11],
        dead_letters=r[12],
        paused=bool(r[13]),
        failures=r[14],
        dead_lettered=r[15],
        origin=r[16],
    )
