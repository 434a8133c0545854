"""Retention on a SQLite log: the policy table, the expired-leaf ranges, and the removal run.

Tables, beside the store's own in the same file (made on first use):

- ``auditbird_retention``: ``workspace -> (period, max_age_ms, updated_at)``.
- ``retention_expired``: ``(workspace, lo, hi)``, leaf index ranges ``[lo, hi)`` of the
  workspace's Merkle tree whose events retention removed, and the uid of the run's event.
  The table is only a hint: ``verify`` counts a range as expired only if the run's
  ``retention.apply`` event, itself a later leaf of the tree, carries the SHA-256 of every range
  the run recorded (:func:`ranges_digest`). Those events are never removed by retention.

A run is one write transaction: the tree first catches up on every committed row (so each
removed event has its leaf), the ``retention.apply`` event is appended (so the file's highest
position is never removed, and new rows never reuse a removed position), the ranges are
recorded, and the rows, their targets and their text-index entries are deleted with
``secure_delete`` on (freed bytes are zeroed, not left in free pages). After the commit the
text index is merged (so its old segments go) and the WAL is checkpointed and truncated, so the
removed payloads are in neither the database file nor its WAL.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator

from .codec import encode
from .event import Event, now_ms
from .retention import RetentionPolicy, RetentionReport
from .stores.sqlite import SQLiteStore, write_rows
from .stores.sqlite_schema import has_text_index
from .stores.sqlite_tree import extend_tree, leaves_to_expire

__all__ = ["store_policy", "read_policies", "apply", "expired_leaves", "expired_ranges", "ranges_digest"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS auditbird_retention (workspace TEXT PRIMARY KEY, period TEXT NOT NULL, "
    "max_age_ms INTEGER NOT NULL, updated_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS retention_expired (workspace TEXT NOT NULL, lo INTEGER NOT NULL, "
    "hi INTEGER NOT NULL, run_uid TEXT NOT NULL, PRIMARY KEY (workspace, lo)) WITHOUT ROWID",
)
RUN_ACTION = "retention.apply"
RUN_ACTOR_ID = "auditbird:retention"
_ACTOR = {"id": RUN_ACTOR_ID, "name": "retention", "type": "system"}
_MAX_RANGES_IN_EVENT = 100  # the event lists the ranges; the table holds all of them
_PAGE = 5_000
CHUNK = 10_000  # expired events removed per transaction (and per retention.apply event)


def _tables(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        conn.execute(statement)


def _record(conn: sqlite3.Connection, workspace: str, action: str, metadata: dict[str, object]) -> str:
    event = Event(
        id=f"retention:{workspace}" if workspace else "retention", action=action, actor=_ACTOR,
        workspace=workspace, metadata=metadata,
    )  # fmt: skip
    write_rows(conn, [encode(event)], tree=True)
    return event.uid


def store_policy(store: SQLiteStore, workspace: str, period: str | None, max_age_ms: int | None) -> None:
    with store._lock, store._write() as conn:
        _tables(conn)
        if period is None or max_age_ms is None:
            conn.execute("DELETE FROM auditbird_retention WHERE workspace = ?", (workspace,))
        else:
            conn.execute(
                "INSERT OR REPLACE INTO auditbird_retention (workspace, period, max_age_ms, updated_at) "
                "VALUES (?, ?, ?, ?)",
                (workspace, period, max_age_ms, now_ms()),
            )
        _record(conn, workspace, "retention.set", {"period": period, "max_age_ms": max_age_ms})


def read_policies(store: SQLiteStore, workspace: str | None) -> list[RetentionPolicy]:
    sql = "SELECT workspace, period, max_age_ms FROM auditbird_retention"
    params: tuple[str, ...] = ()
    if workspace is not None:
        sql, params = sql + " WHERE workspace = ?", (workspace,)
    with store._reading() as conn:
        try:
            found = conn.execute(sql + " ORDER BY workspace", params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # no policy was ever set in this file
                return []
            raise
    return [RetentionPolicy(str(ws), str(period), int(ms)) for ws, period, ms in found]


def range_line(lo: int, hi: int) -> bytes:
    """One range as :func:`ranges_digest` hashes it (so a reader can hash a stream of them)."""
    return f"{lo} {hi}\n".encode()


def ranges_digest(ranges: Iterable[tuple[int, int]]) -> str:
    """SHA-256 (hex) of a run's leaf ranges in ascending order: ``"lo hi\n"`` each."""
    h = hashlib.sha256()
    for lo, hi in ranges:
        h.update(range_line(lo, hi))
    return h.hexdigest()


def _ranges(indexes: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for idx in sorted(indexes):
        if out and out[-1][1] == idx:
            out[-1] = (out[-1][0], idx + 1)
        else:
            out.append((idx, idx + 1))
    return out


def apply(store: SQLiteStore, policy: RetentionPolicy, *, now: int | None, dry_run: bool) -> RetentionReport:
    ws = policy.workspace
    cutoff = (now_ms() if now is None else now) - policy.max_age_ms
    if dry_run:
        with store._reading() as conn:
            count, oldest, newest = conn.execute(
                "SELECT count(*), min(timestamp), max(timestamp) FROM audit_log "
                "WHERE workspace = ? AND timestamp < ?",
                (ws, cutoff),
            ).fetchone()
        return RetentionReport(ws, policy.period, cutoff, int(count), oldest, newest, True)
    removed, stamps, uids = 0, [], []
    while True:
        # One bounded transaction per chunk, the store's lock released in between: a run over
        # a year of backlog never holds publishers up for longer than one chunk.
        with store._lock:
            chunk = _apply_chunk(store, policy, cutoff)
        if chunk is None:
            break
        removed += chunk[0]
        stamps += [chunk[1], chunk[2]]
        uids.append(chunk[3])
    if removed:
        with store._lock:
            _compact(store)
    oldest, newest = (min(stamps), max(stamps)) if stamps else (None, None)
    return RetentionReport(ws, policy.period, cutoff, removed, oldest, newest, False, tuple(uids))


def _apply_chunk(
    store: SQLiteStore, policy: RetentionPolicy, cutoff: int
) -> tuple[int, int, int, str] | None:
    """Remove up to :data:`CHUNK` of the oldest expired events in one transaction, recorded by
    one ``retention.apply`` event; None when none is left."""
    ws = policy.workspace
    try:
        with store._write() as conn:
            conn.execute("PRAGMA secure_delete = ON")  # deleted cells and freed pages are zeroed
            extend_tree(conn)  # every removed event keeps its leaf, even rows written with tree=off
            # The runs' own events stay: each accounts for the ranges its run removed.
            found = leaves_to_expire(conn, ws, cutoff, RUN_ACTION, RUN_ACTOR_ID, CHUNK)
            if not found:
                return None
            _tables(conn)
            stamps = [int(t) for _, t, _ in found]
            ranges = _ranges([int(i) for _, _, i in found])
            uid = _record(
                conn,
                ws,
                RUN_ACTION,
                {
                    "period": policy.period,
                    "cutoff": cutoff,
                    "removed": len(found),
                    "oldest": min(stamps),
                    "newest": max(stamps),
                    "leaf_ranges": [list(r) for r in ranges[:_MAX_RANGES_IN_EVENT]],
                    "leaf_ranges_total": len(ranges),
                    "leaf_ranges_sha256": ranges_digest(ranges),
                },
            )
            conn.executemany(
                "INSERT OR REPLACE INTO retention_expired (workspace, lo, hi, run_uid) VALUES (?, ?, ?, ?)",
                [(ws, lo, hi, uid) for lo, hi in ranges],
            )
            positions = json.dumps([int(p) for p, _, _ in found])
            conn.execute(
                "DELETE FROM audit_target WHERE position IN (SELECT value FROM json_each(?))", (positions,)
            )
            conn.execute(
                "DELETE FROM audit_log WHERE position IN (SELECT value FROM json_each(?))", (positions,)
            )
            return len(found), min(stamps), max(stamps), uid
    finally:
        store._conn.execute("PRAGMA secure_delete = OFF")


def _compact(store: SQLiteStore) -> None:
    """Merge the text index (its old segments still hold the removed rows' trigrams) and move
    the WAL into the file, truncating it: the removed bytes leave the WAL too."""
    try:
        with store._write() as conn:
            if has_text_index(conn):
                conn.execute("PRAGMA secure_delete = ON")
                conn.execute("INSERT INTO audit_text (audit_text) VALUES ('optimize')")
    finally:
        store._conn.execute("PRAGMA secure_delete = OFF")
    # A reader still inside an old snapshot keeps the WAL: then the next run truncates it.
    store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()


def expired_leaves(store: SQLiteStore, workspace: str) -> Iterator[int]:
    """Leaf indexes retention_expired lists, ascending (not checked against the runs' events)."""
    for lo, hi, _run in expired_ranges(store, workspace):
        yield from range(lo, hi)


def expired_ranges(store: SQLiteStore, workspace: str) -> Iterator[tuple[int, int, str]]:
    """``(lo, hi, run_uid)`` rows of retention_expired by ascending ``lo``, a page at a time."""
    after = -1
    while True:
        with store._reading() as conn:
            try:
                found = conn.execute(
                    "SELECT lo, hi, run_uid FROM retention_expired WHERE workspace = ? AND lo > ? "
                    "ORDER BY lo LIMIT ?",
                    (workspace, after, _PAGE),
                ).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return
                raise
        for lo, hi, run in found:
            yield int(lo), int(hi), str(run)
        if len(found) < _PAGE:
            return
        after = int(found[-1][0])
