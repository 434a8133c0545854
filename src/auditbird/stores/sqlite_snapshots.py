"""The snapshot tier of the SQLite store: projection snapshots in the events' own file.

A mixin, so the store declares the tier by inheriting it
(``class SQLiteStore(FileSnapshots, ...)``). Snapshots get their own connection (they are
a cache beside the events, never part of an event's transaction); an in-memory database
keeps them in a dict.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from ..snapshots import Snapshot, SnapshotStore, fence_holds
from .capabilities import SnapshotStoreTier, read_erasure_generation

__all__ = ["FileSnapshots", "read_erasure_generation"]


class _MemorySnapshots:
    """Snapshots of a ``:memory:`` database: a dict, as the events vanish with the process."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str, str], Snapshot] = {}
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()

    def erasure_generation(self, workspace: str) -> int:
        """How many times an erasure deleted the workspace's snapshots."""
        return self._generations.get(workspace, 0)

    def load(self, workspace: str, event_id: str, projection: str, code_version: str) -> Snapshot | None:
        """The snapshot, if ``code_version`` made it."""
        found = self._data.get((workspace, event_id, projection))
        return found if found is not None and found.code_version == code_version else None

    def save(self, snapshot: Snapshot) -> bool:
        """Keep ``snapshot``, unless an erasure came since its fold began (see snapshots.py)."""
        with self._lock:
            if not fence_holds(snapshot, self._generations.get(snapshot.workspace, 0)):
                return False
            self._data[(snapshot.workspace, snapshot.event_id, snapshot.projection)] = snapshot
            return True

    def delete_workspace(self, workspace: str) -> int:
        """Forget the workspace's snapshots; how many."""
        with self._lock:
            gone = [key for key in self._data if key[0] == workspace]
            for key in gone:
                del self._data[key]
            self._generations[workspace] = self._generations.get(workspace, 0) + 1
            return len(gone)

    def close(self) -> None:
        """Forget them all."""
        self._data.clear()


_OPEN_LOCK = threading.Lock()


class FileSnapshots(SnapshotStoreTier):
    """``load_snapshot`` / ``save_snapshot`` in the ``auditbird_snapshot`` table of ``self.path``."""

    path: str

    def _snapshots(self) -> SnapshotStore | _MemorySnapshots:
        keeper: Any = self.__dict__.get("_auditbird_snapshots")
        if keeper is None:
            with _OPEN_LOCK:
                keeper = self.__dict__.get("_auditbird_snapshots")
                if keeper is None:
                    keeper = _MemorySnapshots() if self.path == ":memory:" else SnapshotStore(self.path)
                    weakref.finalize(self, keeper.close)
                    self.__dict__["_auditbird_snapshots"] = keeper
        snapshots: SnapshotStore | _MemorySnapshots = keeper
        return snapshots

    def load_snapshot(
        self, workspace: str, event_id: str, projection: str, code_version: str
    ) -> Snapshot | None:
        """The projection's snapshot of the stream, if ``code_version`` made it."""
        return self._snapshots().load(workspace, event_id, projection, code_version)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` in the file, replacing the projection's previous one; nothing if
        an erasure deleted the workspace's snapshots since its fold began (its
        ``erasure_generation``)."""
        self._snapshots().save(snapshot)

    def snapshot_erasure_generation(self, workspace: str) -> int:
        """The workspace's erasure generation: a fold reads it before any event and hands it to
        its snapshot, whose save then stores nothing if an erasure came in between."""
        return self._snapshots().erasure_generation(workspace)

    def delete_snapshots(self, workspace: str) -> int:
        """Forget every snapshot of ``workspace`` (an erasure: snapshots may hold personal
        values folded before it); how many were deleted."""
        return self._snapshots().delete_workspace(workspace)
