"""The PostgreSQL store's projection snapshots, fenced against erasures (snapshots.py).

An erasure deletes the workspace's snapshots and bumps its erasure generation (table
``auditbird_snapshot_erasure``, schema 3) in one transaction; a fold reads the generation
before any event, and its save stores nothing unless the generation is still that one. Under
READ COMMITTED a plain ``SELECT`` of the generation in the save would read the statement's
snapshot, which can predate an erasure committing meanwhile; so both sides take the
generation's *row lock*, and the rule (:func:`~auditbird.snapshots.fence_holds`) is checked on
the row's latest version:

- the save, in one statement, upserts the generation row as it is (``ON CONFLICT DO UPDATE``
  locks the row and re-reads it after waiting for an erasure holding it) and inserts the
  snapshot only if the generation it returns is the fold's;
- the erasure bumps the generation *first*, then deletes: its lock waits for a save in flight
  to commit, and the ``DELETE`` (a later statement, a newer snapshot) then sees that save's row.

So two replicas racing are safe too. A workspace with no generation row is at generation 0;
the save's upsert creates the row, so the first erasure's insert conflicts with it and waits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._errors import StoreUnavailable
from ..event import now_ms
from ..snapshots import Snapshot

__all__ = ["GENERATION_SQL", "LOAD_SQL", "save_snapshot", "delete_snapshots", "granted"]

# Written out, not composed: every statement is a constant (parameters only).
# A snapshot made by hand (no erasure_generation): not fenced.
_SAVE = """
INSERT INTO auditbird_snapshot (workspace, stream, projection, code_version, position, revision,
                                max_timestamp, state, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (workspace, stream, projection) DO UPDATE SET code_version = excluded.code_version,
    position = excluded.position, revision = excluded.revision,
    max_timestamp = excluded.max_timestamp, state = excluded.state, created_at = excluded.created_at
"""
# The generation row is locked (a no-op update) and returned only if it still is the fold's.
_SAVE_FENCED = """
WITH fence AS (
    INSERT INTO auditbird_snapshot_erasure AS e (workspace, generation) VALUES (%s, 0)
    ON CONFLICT (workspace) DO UPDATE SET generation = e.generation WHERE e.generation = %s
    RETURNING generation
)
INSERT INTO auditbird_snapshot (workspace, stream, projection, code_version, position, revision,
                                max_timestamp, state, created_at)
SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s FROM fence WHERE fence.generation = %s
ON CONFLICT (workspace, stream, projection) DO UPDATE SET code_version = excluded.code_version,
    position = excluded.position, revision = excluded.revision,
    max_timestamp = excluded.max_timestamp, state = excluded.state, created_at = excluded.created_at
"""
_BUMP = (
    "INSERT INTO auditbird_snapshot_erasure AS e (workspace, generation) VALUES (%s, 1) "
    "ON CONFLICT (workspace) DO UPDATE SET generation = e.generation + 1"
)
GENERATION_SQL = "SELECT generation FROM auditbird_snapshot_erasure WHERE workspace = %s"
LOAD_SQL = (
    "SELECT position, revision, max_timestamp, state FROM auditbird_snapshot WHERE "
    "workspace = %s AND stream = %s AND projection = %s AND code_version = %s"
)


def save_snapshot(conn: Any, snapshot: Snapshot) -> bool:
    """Store ``snapshot`` on ``conn`` (autocommit: one statement, its own transaction); False,
    and nothing stored, if an erasure bumped its workspace's generation since its fold began."""
    row = snapshot.row(now_ms())
    fence = snapshot.erasure_generation
    if fence is None:
        conn.execute(_SAVE, row)
        return True
    cur = conn.execute(_SAVE_FENCED, (snapshot.workspace, fence, *row, fence))
    return bool(cur.rowcount)


def delete_snapshots(conn: Any, workspace: str) -> int:
    """Delete ``workspace``'s snapshots and bump its generation, in one transaction on
    ``conn``; how many were deleted. The bump comes first (see the module's doc)."""
    with conn.transaction():
        conn.execute(_BUMP, (workspace,))
        return int(conn.execute("DELETE FROM auditbird_snapshot WHERE workspace = %s", (workspace,)).rowcount)


@contextmanager
def granted(where: str) -> Iterator[None]:
    """A role without rights on the snapshot tables gets what to do, not a bare server error.
    Schema 3 added ``auditbird_snapshot_erasure``: a role granted its rights table by table
    before the upgrade has none on it yet (and a fold must not save unfenced)."""
    import psycopg

    try:
        yield
    except psycopg.errors.InsufficientPrivilege as exc:
        raise StoreUnavailable(
            f"{where}: this role may not use the projection snapshot tables ({exc.diag.message_primary}); "
            "nothing was saved or deleted: as their owner, GRANT SELECT, INSERT, UPDATE, DELETE ON "
            "auditbird_snapshot, auditbird_snapshot_erasure TO this role"
        ) from exc
