"""An async face on a blocking store: each call runs in a worker thread.

It declares the async twin of every tier the blocking store declares, so
``AsyncAuditLog(SQLiteStore(...))`` has streams, follow, histograms and snapshots, and
``AsyncAuditLog(MemoryStore())`` everything a test needs.

>>> from auditbird.testing import MemoryStore
>>> from auditbird.stores.capabilities import AsyncStreamStore, supports
>>> supports(threaded(MemoryStore()), AsyncStreamStore)
True
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from ..query import Query
from ..row import Row
from .base import AsyncStore, Store
from .capabilities import TIERS, tiers_of

if TYPE_CHECKING:
    from ..snapshots import Snapshot

__all__ = ["ThreadedStore", "threaded"]

# Appends wait in their thread for a durable commit they share with the others queued (group
# commit, stores/group_commit.py): each waiting task needs a thread of its own, and the
# loop's default pool (cpu + 4 threads, shared with reads) would cap a group at a handful.
# Threads are made only when that many appends are in flight at once.
APPEND_THREADS = 64


class ThreadedStore:
    """Every tier's methods as coroutines over ``sync``; which of them it *supports* is what
    its class declares (see :func:`threaded`)."""

    def __init__(self, store: Store) -> None:
        self.sync: Any = store
        self._appends: ThreadPoolExecutor | None = None

    async def _in_append_thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self._appends is None:
            self._appends = ThreadPoolExecutor(APPEND_THREADS, thread_name_prefix="auditbird-append")
        return await asyncio.get_running_loop().run_in_executor(self._appends, partial(fn, *args, **kwargs))

    async def append(
        self, rows: Sequence[Row], *, expected_revision: int | None = None
    ) -> Mapping[int, Row] | None:
        """:meth:`~auditbird.stores.capabilities.Store.append` in a worker thread (its answer:
        the stored copies, on a store of the stored-copy tier)."""
        kept: Mapping[int, Row] | None
        if expected_revision is None:
            kept = await self._in_append_thread(self.sync.append, rows)
        else:
            kept = await self._in_append_thread(self.sync.append, rows, expected_revision=expected_revision)
        return kept

    async def query(self, query: Query) -> list[Row]:
        """:meth:`~auditbird.stores.capabilities.Store.query` in a worker thread."""
        rows: list[Row] = await asyncio.to_thread(self.sync.query, query)
        return rows

    async def revision(self, workspace: str, event_id: str) -> int:
        """:meth:`~auditbird.stores.capabilities.StreamStore.revision` in a worker thread."""
        return int(await asyncio.to_thread(self.sync.revision, workspace, event_id))

    async def read_committed(self, after_position: int = 0, limit: int = 1_000) -> list[Row]:
        """:meth:`~auditbird.stores.capabilities.FollowStore.read_committed` in a worker thread."""
        rows: list[Row] = await asyncio.to_thread(self.sync.read_committed, after_position, limit)
        return rows

    async def last_position(self) -> int:
        """:meth:`~auditbird.stores.capabilities.FollowStore.last_position` in a worker thread."""
        return int(await asyncio.to_thread(self.sync.last_position))

    async def histogram(self, query: Query, bucket_ms: int) -> list[tuple[int, str, int]]:
        """:meth:`~auditbird.stores.capabilities.HistogramStore.histogram` in a worker thread."""
        counts: list[tuple[int, str, int]] = await asyncio.to_thread(self.sync.histogram, query, bucket_ms)
        return counts

    async def load_snapshot(
        self, workspace: str, event_id: str, projection: str, code_version: str
    ) -> Snapshot | None:
        """:meth:`~auditbird.stores.capabilities.SnapshotStoreTier.load_snapshot` in a worker thread."""
        found: Snapshot | None = await asyncio.to_thread(
            self.sync.load_snapshot, workspace, event_id, projection, code_version
        )
        return found

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """:meth:`~auditbird.stores.capabilities.SnapshotStoreTier.save_snapshot` in a worker thread."""
        await asyncio.to_thread(self.sync.save_snapshot, snapshot)

    async def aclose(self) -> None:
        """:meth:`~auditbird.stores.capabilities.Store.close` in a worker thread."""
        await asyncio.to_thread(self.sync.close)
        if self._appends is not None:
            self._appends.shutdown(wait=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.sync!r})"


@cache
def _threaded_class(tiers: frozenset[type]) -> type[ThreadedStore]:
    bases = tuple(TIERS[t] for t in TIERS if t in tiers)
    return type("ThreadedStore", (ThreadedStore, *bases), {"__module__": __name__})


def threaded(store: Store) -> AsyncStore:
    """``store`` behind a :class:`ThreadedStore` declaring the async twins of its tiers."""
    cls = _threaded_class(tiers_of(store))
    wrapped: AsyncStore = cls(store)
    return wrapped
