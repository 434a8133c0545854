"""Projection snapshots: the folded state of a stream at a position, so a long stream does
not replay from the start. In auditbird "snapshot" means only this; the before/after copies of
a change event are its *states* (:mod:`auditbird.changes`).

Stores of the snapshot tier keep them (:class:`~auditbird.stores.capabilities.SnapshotStoreTier`):
the SQLite store in its own file, in their own table (this module's :class:`SnapshotStore`).

A snapshot is keyed by (workspace, event_id, projection) and remembers the projection's code
version: a snapshot made by other code is ignored (and replaced on the next save).

An erasure deletes a workspace's snapshots (they may hold a subject's values in the clear), but
a fold that read the events before the key was destroyed would save its plaintext state right
after. So each deletion bumps the workspace's *erasure generation*, in the deletion's
transaction; a fold reads the generation before it reads any event, and its save checks it in
the save's transaction: a save from a fold that started before an erasure stores nothing
(:func:`fence_holds`; PostgreSQL checks the same in its save's statement, stores/postgres.py).
A store keeps the generation if it has ``snapshot_erasure_generation(workspace)``; a fold reads
it with :func:`auditbird.stores.capabilities.read_erasure_generation`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass, field

from .event import now_ms

__all__ = ["Snapshot", "SnapshotStore", "fence_holds"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS auditbird_snapshot (
    workspace     TEXT    NOT NULL,
    stream        TEXT    NOT NULL,  -- the event_id (a column name shipped in existing files)
    projection    TEXT    NOT NULL,
    code_version  TEXT    NOT NULL,
    position      INTEGER NOT NULL,  -- the last event folded in
    revision      INTEGER NOT NULL,  -- how many events were folded in
    max_timestamp INTEGER NOT NULL,  -- the latest event time folded in (decides as_of use)
    state         TEXT    NOT NULL,  -- the projection as JSON
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (workspace, stream, projection)
)
"""
# One row per workspace an erasure reached: how many times its snapshots were deleted.
_GENERATIONS = """
CREATE TABLE IF NOT EXISTS auditbird_snapshot_erasure (
    workspace  TEXT    NOT NULL PRIMARY KEY,
    generation INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class Snapshot:
    """A projection's state (JSON) after folding ``revision`` events, the last at ``position``.

    >>> Snapshot("", "monitor:1", "app.MonitorState", "1:ab:cd", 10, 10, 1_700_000_000_000, "{}").revision
    10
    """

    workspace: str
    event_id: str
    projection: str
    code_version: str
    position: int
    revision: int
    max_timestamp: int
    state: str
    # The workspace's erasure generation read before the fold read any event; the save stores
    # nothing if an erasure came since. None: not fenced (a snapshot made by hand).
    erasure_generation: int | None = field(default=None, compare=False)

    def row(self, created_at: int) -> tuple[str | int, ...]:
        """The values every snapshot table stores, in its column order, ``created_at`` last."""
        return (
            self.workspace,
            self.event_id,
            self.projection,
            self.code_version,
            self.position,
            self.revision,
            self.max_timestamp,
            self.state,
            created_at,
        )


class SnapshotStore:
    """Snapshots in a SQLite file (usually the events' own file).

    >>> import os, tempfile
    >>> keeper = SnapshotStore(os.path.join(tempfile.mkdtemp(), "audit.db"))
    >>> keeper.save(Snapshot("", "m:1", "p", "v1", 3, 3, 0, "{}"))
    True
    >>> keeper.load("", "m:1", "p", "v1").position, keeper.load("", "m:1", "p", "v2")
    (3, None)
    >>> keeper.close()
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_ms: int = 30_000) -> None:
        self.path = str(path)
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
        )
        self._lock = threading.Lock()
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        # A replaced or deleted snapshot may hold personal values read before an erasure:
        # zeroed in its page rather than left in free space (docs/erasure.md).
        self._conn.execute("PRAGMA secure_delete = ON")
        self._conn.execute(_SCHEMA)
        self._conn.execute(_GENERATIONS)

    def load(self, workspace: str, event_id: str, projection: str, code_version: str) -> Snapshot | None:
        """The snapshot of ``projection`` for the stream, if ``code_version`` made it."""
        with self._lock:
            row = self._conn.execute(
                "SELECT position, revision, max_timestamp, state FROM auditbird_snapshot "
                "WHERE workspace = ? AND stream = ? AND projection = ? AND code_version = ?",
                (workspace, event_id, projection, code_version),
            ).fetchone()
        if row is None:
            return None
        return Snapshot(workspace, event_id, projection, code_version, row[0], row[1], row[2], row[3])

    def erasure_generation(self, workspace: str) -> int:
        """How many times an erasure deleted ``workspace``'s snapshots (0: never)."""
        with self._lock:
            return self._generation(workspace)

    def _generation(self, workspace: str) -> int:
        row = self._conn.execute(
            "SELECT generation FROM auditbird_snapshot_erasure WHERE workspace = ?", (workspace,)
        ).fetchone()
        return int(row[0]) if row else 0

    def save(self, snapshot: Snapshot) -> bool:
        """Keep ``snapshot``, replacing the projection's previous one for the stream; False (and
        nothing stored) if an erasure deleted the workspace's snapshots since its fold began."""
        with self._lock:
            # IMMEDIATE: the generation read and the insert are one write transaction, so no
            # erasure's deletion can fall between them (a concurrent one waits, then deletes it).
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if not fence_holds(snapshot, self._generation(snapshot.workspace)):
                    self._conn.execute("ROLLBACK")
                    return False
                self._conn.execute(
                    "INSERT OR REPLACE INTO auditbird_snapshot (workspace, stream, projection, "
                    "code_version, position, revision, max_timestamp, state, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    snapshot.row(now_ms()),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            return True

    def delete(self, workspace: str, event_id: str, projection: str | None = None) -> int:
        """Forget a stream's snapshots (of one projection, or all); how many were deleted."""
        sql = "DELETE FROM auditbird_snapshot WHERE workspace = ? AND stream = ?"
        params: list[str] = [workspace, event_id]
        if projection is not None:
            sql += " AND projection = ?"
            params.append(projection)
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    def delete_workspace(self, workspace: str) -> int:
        """Forget every snapshot of ``workspace`` (an erasure: they may hold the subject's
        values); how many were deleted. The WAL is then checkpointed and truncated, so the
        deleted rows' older page images leave it too (when no reader holds it open)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                count = self._conn.execute(
                    "DELETE FROM auditbird_snapshot WHERE workspace = ?", (workspace,)
                ).rowcount
                # A fold that began before this point saves nothing (see the module's doc).
                self._conn.execute(
                    "INSERT INTO auditbird_snapshot_erasure (workspace, generation) VALUES (?, 1) "
                    "ON CONFLICT (workspace) DO UPDATE SET generation = generation + 1",
                    (workspace,),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return count

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def fence_holds(snapshot: Snapshot, generation: int) -> bool:
    """Whether ``snapshot`` may be stored now that its workspace's erasure generation is
    ``generation``: no erasure since its fold began (or a snapshot made by hand, not fenced)."""
    return snapshot.erasure_generation is None or snapshot.erasure_generation == generation
