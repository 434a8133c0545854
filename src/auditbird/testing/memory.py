"""``MemoryStore``: every tier, in a dict, for your own unit tests (as httpx's ``MockTransport``).

>>> from auditbird import AuditLog
>>> store = MemoryStore()
>>> log = AuditLog(store)
>>> _ = log.publish_audit_log({"id": "monitor:1", "action": "monitor.down"})
>>> [row.action for row in store.rows]
['monitor.down']
>>> log.revision("monitor:1")
1
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

from .._errors import ConflictError
from ..query import Query
from ..row import Row
from ..snapshots import Snapshot
from ..stores.capabilities import (
    FollowStore,
    HistogramStore,
    ReplayStore,
    SnapshotStoreTier,
    StoredCopyStore,
    StreamStore,
)

__all__ = ["MemoryStore"]

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class MemoryStore(ReplayStore, StreamStore, FollowStore, HistogramStore, SnapshotStoreTier, StoredCopyStore):
    """A store in memory that passes the contract suite of every tier.

    ``rows`` lists what was stored, in commit order (with positions). Nothing survives the
    process; one instance is one store (share it between logs to share events).
    """

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self._owner: dict[str, str] = {}  # uid -> workspace
        self._stored: dict[str, Row] = {}  # uid -> its stored row
        self._snapshots: dict[tuple[str, str, str], Snapshot] = {}
        self._lock = threading.RLock()

    # -- base tier ------------------------------------------------------------------------

    def append(self, rows: Sequence[Row], *, expected_revision: int | None = None) -> dict[int, Row]:
        """All rows or none; a uid already stored in its workspace is skipped (first wins).
        Returns the stored copy of each skipped row, by index."""
        kept: dict[int, Row] = {}
        if not rows:
            return kept
        with self._lock:
            taken = sorted({r.uid for r in rows if self._owner.get(r.uid, r.workspace) != r.workspace})
            if taken:
                raise ConflictError(
                    f"uid {', '.join(taken[:3])} is already taken; give these events new uids"
                )
            if expected_revision is not None:
                streams = {(r.workspace, r.id) for r in rows}
                if len(streams) != 1:
                    raise ValueError("expected_revision needs every event of the append in one stream")
                ((workspace, event_id),) = streams
                current = self.revision(workspace, event_id)
                if current != expected_revision:
                    raise ConflictError(
                        f"stream {event_id!r} is at revision {current}, not {expected_revision}: "
                        "another writer got there first; reload the stream and retry"
                    )
            for i, row in enumerate(rows):
                if row.uid in self._owner:
                    kept[i] = self._stored[row.uid]
                    continue
                self._owner[row.uid] = row.workspace
                self.rows.append(row._replace(position=len(self.rows) + 1))
                self._stored[row.uid] = self.rows[-1]
        return kept

    def query(self, query: Query) -> list[Row]:
        """The rows ``query`` matches, in its order, after its keyset position, up to its limit."""
        with self._lock:
            found = [r for r in self.rows if _matches(query, r)]
        if query.order == "position":
            if query.after_position is not None:
                found = [r for r in found if (r.position or 0) > query.after_position]
        else:
            desc = query.order == "desc"
            found.sort(key=lambda r: (r.timestamp, r.uid), reverse=desc)
            if query.after is not None:
                after = query.after
                found = [
                    r
                    for r in found
                    if ((r.timestamp, r.uid) < after if desc else (r.timestamp, r.uid) > after)
                ]
        return found if query.limit is None else found[: query.limit]

    def close(self) -> None:
        """Nothing to release; the rows stay readable."""

    # -- stream tier ----------------------------------------------------------------------

    def revision(self, workspace: str, event_id: str) -> int:
        """How many events the stream holds."""
        with self._lock:
            return sum(1 for r in self.rows if r.workspace == workspace and r.id == event_id)

    # -- follow tier ----------------------------------------------------------------------

    def read_committed(self, after_position: int = 0, limit: int = 1_000) -> list[Row]:
        """Every workspace's rows after ``after_position``, in commit order."""
        with self._lock:
            return self.rows[after_position : after_position + limit]

    def last_position(self) -> int:
        """The newest position (0 when empty)."""
        with self._lock:
            return len(self.rows)

    # -- histogram tier -------------------------------------------------------------------

    def histogram(self, query: Query, bucket_ms: int) -> list[tuple[int, str, int]]:
        """``(bucket_start_ms, action, count)``, buckets from ``query.since``."""
        origin = query.since or 0
        counts: dict[tuple[int, str], int] = {}
        with self._lock:
            for r in self.rows:
                if _matches(query, r):
                    key = ((r.timestamp - origin) // bucket_ms * bucket_ms + origin, r.action)
                    counts[key] = counts.get(key, 0) + 1
        return [(b, a, n) for (b, a), n in sorted(counts.items())]

    # -- snapshot tier --------------------------------------------------------------------

    def load_snapshot(
        self, workspace: str, event_id: str, projection: str, code_version: str
    ) -> Snapshot | None:
        """The saved snapshot, if made by this code version."""
        found = self._snapshots.get((workspace, event_id, projection))
        return found if found is not None and found.code_version == code_version else None

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot``, replacing the projection's previous one."""
        self._snapshots[(snapshot.workspace, snapshot.event_id, snapshot.projection)] = snapshot


def _matches(q: Query, r: Row) -> bool:
    if r.workspace != q.workspace:
        return False
    if q.event_id is not None and r.id != q.event_id:
        return False
    if q.actions and r.action not in q.actions:
        return False
    if q.uid is not None and r.uid != q.uid:
        return False
    if q.since is not None and r.timestamp < q.since:
        return False
    if q.until is not None and r.timestamp >= q.until:
        return False
    if q.actor_id is not None and str(json.loads(r.actor).get("id", "")) != q.actor_id:
        return False
    if q.target_type is not None or q.target_id is not None:
        targets = [
            (t.get("type") or t.get("name") or "", str(t.get("id", "")))
            for t in json.loads(r.targets or "[]")
        ]
        if not any(
            (q.target_type is None or kind == q.target_type) and (q.target_id is None or ident == q.target_id)
            for kind, ident in targets
        ):
            return False
    if q.text:
        # The agreed text search: case-insensitive for ASCII letters only.
        needle = q.text.translate(_ASCII_LOWER)
        if needle not in r.id.translate(_ASCII_LOWER) and needle not in (r.metadata or "").translate(
            _ASCII_LOWER
        ):
            return False
    return True
