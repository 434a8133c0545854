"""Store capabilities as tiers: protocols a store declares, checked in this one place.

Every store is a :class:`~auditbird.stores.base.Store` (append, query newest first, close).
Wider contracts are tiers, as eventsourcing tiers its recorders; a store *declares* a tier by
inheriting its protocol, and the facade, the event-sourcing layer, the relay and the service
ask :func:`require` / :func:`supports` here instead of probing attributes:

=====================  =========================================================  ==========================
tier                   adds                                                       stores
=====================  =========================================================  ==========================
:class:`Store`         ``append``, ``query`` (newest first, keyset), ``close``    every store
:class:`ReplayStore`   ``query(order="asc")``: history oldest first, in pages     sqlite, tinybird, memory
:class:`StreamStore`   ``revision``, ``append(expected_revision=)``,              sqlite, memory
                       ``query(order="position")`` of one stream
:class:`FollowStore`   ``query(order="position")`` over a workspace,              sqlite, memory
                       ``read_committed``, ``last_position``
:class:`HistogramStore` ``histogram(query, bucket_ms)``                           sqlite, memory
:class:`SnapshotStoreTier` ``load_snapshot``, ``save_snapshot``                   sqlite, memory
=====================  =========================================================  ==========================

Each tier has an async twin (``AsyncStreamStore`` ...) with the same methods as coroutines.
The contract suite of each tier is in :mod:`auditbird.testing.contract`.

>>> from auditbird.testing import MemoryStore
>>> store = require(MemoryStore(), StreamStore)          # returns the store, typed
>>> supports(store, HistogramStore)
True
>>> class AppendOnly:
...     def append(self, rows): ...
...     def query(self, query): return []
...     def close(self): ...
>>> require(AppendOnly(), StreamStore)  # doctest: +ELLIPSIS
Traceback (most recent call last):
  ...
auditbird._errors.UnsupportedOperation: AppendOnly does not support stream revisions and ...
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .._errors import UnsupportedOperation
from ..query import Query
from ..row import Row
from .base import AsyncStore, Store

if TYPE_CHECKING:
    from ..snapshots import Snapshot

__all__ = [
    "Store",
    "AsyncStore",
    "ReplayStore",
    "StreamStore",
    "FollowStore",
    "HistogramStore",
    "SnapshotStoreTier",
    "AsyncTwinStore",
    "CommitWaiter",
    "AsyncCommitWaiter",
    "async_commit_waiter",
    "AsyncReplayStore",
    "AsyncStreamStore",
    "AsyncFollowStore",
    "AsyncHistogramStore",
    "AsyncSnapshotStoreTier",
    "TIERS",
    "require",
    "supports",
    "tiers_of",
    "async_tier",
    "store_name",
]

T = TypeVar("T")

# -- the blocking tiers ----------------------------------------------------------------------


class ReplayStore(Store, Protocol):
    """``query`` also answers ``order="asc"`` (oldest first, keyset ``after``), so a stream's
    history is read page by page in constant memory."""


class StreamStore(Store, Protocol):
    """Streams in commit order: optimistic concurrency and positional history.

    ``append(rows, expected_revision=n)`` stores the rows (all of one stream) only if the
    stream holds exactly ``n`` events, atomically, else raises :class:`ConflictError`;
    ``revision`` counts a stream's events; ``query(order="position", event_id=...)`` reads a
    stream in commit order, keyed by ``after_position``, every row with its ``position``.
    """

    def append(
        self, rows: Sequence[Row], *, expected_revision: int | None = None
    ) -> Mapping[int, Row] | None:
        """:meth:`Store.append`; with ``expected_revision``, only if the stream holds that many."""
        ...

    def revision(self, workspace: str, event_id: str) -> int:
        """How many events the stream holds (the next append's ``expected_revision``)."""
        ...


class FollowStore(Store, Protocol):
    """Durable, gap-free commit positions over the whole log.

    ``query(order="position", after_position=p)`` answers a workspace's rows committed after
    ``p`` (with any filter); ``read_committed`` every workspace's (the outbox relay);
    ``last_position`` the newest position (0 when empty).
    """

    def read_committed(self, after_position: int = 0, limit: int = 1_000) -> list[Row]:
        """Every workspace's rows committed after ``after_position``, in commit order."""
        ...

    def last_position(self) -> int:
        """The position of the newest committed row (0 when empty)."""
        ...


class HistogramStore(Store, Protocol):
    """``histogram(query, bucket_ms)``: ``(bucket_start_ms, action, count)`` rows for the
    events a query matches (no limit); buckets start at ``query.since``."""

    def histogram(self, query: Query, bucket_ms: int) -> list[tuple[int, str, int]]:
        """``(bucket_start_ms, action, count)`` for the events ``query`` matches."""
        ...


class SnapshotStoreTier(Store, Protocol):
    """Keeps projection snapshots (the folded state of a stream at a position) beside the
    events, keyed by ``(workspace, stream, projection)`` and the projection's code version."""

    def load_snapshot(
        self, workspace: str, event_id: str, projection: str, code_version: str
    ) -> Snapshot | None:
        """The projection's snapshot of the stream, if one made by ``code_version`` exists."""
        ...

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot``, replacing the projection's previous one for the stream."""
        ...


class AsyncTwinStore(Store, Protocol):
    """A blocking store with a native async client: ``async_twin()`` is the same store as an
    :class:`AsyncStore` (``AsyncAuditLog`` uses it instead of worker threads)."""

    def async_twin(self) -> AsyncStore:
        """The same store as an :class:`AsyncStore` (its own async client)."""
        ...


class CommitWaiter(Protocol):
    """Not a tier: a follow-tier store that can block until a commit arrives (PostgreSQL's
    LISTEN/NOTIFY), so an idle ``follow`` sends no queries. The follow loop carries the token
    each wait returns; ``token=None`` starts listening and returns at once (read again first)."""

    def wait_for_commit(self, token: int | None, timeout: float | None, stop: threading.Event | None) -> int:
        """Block until a commit after ``token``, ``timeout`` seconds or ``stop``; the new token."""
        ...


class AsyncCommitWaiter(Protocol):
    """Not a tier: :class:`CommitWaiter` for a coroutine, so ``AsyncAuditLog.follow`` over a
    blocking store (behind a thread pool) waits for a commit without a query or a parked thread."""

    async def wait_for_commit_async(
        self, token: int | None, timeout: float | None, stop: threading.Event | None
    ) -> int:
        """:meth:`CommitWaiter.wait_for_commit`, awaited."""
        ...


def async_commit_waiter(store: Any) -> AsyncCommitWaiter | None:
    """The async store itself, or the blocking store behind it (a ThreadedStore keeps it as
    ``sync``), if it declares :class:`AsyncCommitWaiter`; else None (the follow loop polls)."""
    for candidate in (store, getattr(store, "sync", None)):
        if candidate is not None and supports(candidate, AsyncCommitWaiter):
            found: AsyncCommitWaiter = candidate
            return found
    return None


def read_erasure_generation(store: Any, workspace: str) -> Any:
    """A fold's first read: the erasure generation of ``workspace`` in ``store`` (a store with
    ``snapshot_erasure_generation``, or the async wrapper around one, which keeps it in
    ``.sync``), or None for stores that keep no generation. An awaitable when ``store`` is
    async, as a fold's steps are there."""
    value = None
    # Looked up on the class, so a wrapper that delegates every attribute does not pass for a
    # store that keeps a generation; an async wrapper (ThreadedStore) keeps its store as `sync`.
    for candidate in (store, getattr(store, "__dict__", {}).get("sync")):
        if candidate is not None and callable(getattr(type(candidate), "snapshot_erasure_generation", None)):
            value = candidate.snapshot_erasure_generation
            break
    if not inspect.iscoroutinefunction(store.load_snapshot):
        return None if value is None else value(workspace)

    async def read() -> int | None:
        return None if value is None else await asyncio.to_thread(value, workspace)

    return read()


# -- the async twins -------------------------------------------------------------------------


class AsyncReplayStore(AsyncStore, Protocol):
    """The async twin of :class:`ReplayStore`."""


class AsyncStreamStore(AsyncStore, Protocol):
    """The async twin of :class:`StreamStore`."""

    async def append(
        self, rows: Sequence[Row], *, expected_revision: int | None = None
    ) -> Mapping[int, Row] | None:
        """:meth:`StreamStore.append`, awaited."""
        ...

    async def revision(self, workspace: str, event_id: str) -> int:
        """:meth:`StreamStore.revision`, awaited."""
        ...


class AsyncFollowStore(AsyncStore, Protocol):
    """The async twin of :class:`FollowStore`."""

    async def read_committed(self, after_position: int = 0, limit: int = 1_000) -> list[Row]:
        """:meth:`FollowStore.read_committed`, awaited."""
        ...

    async def last_position(self) -> int:
        """:meth:`FollowStore.last_position`, awaited."""
        ...


class AsyncHistogramStore(AsyncStore, Protocol):
    """The async twin of :class:`HistogramStore`."""

    async def histogram(self, query: Query, bucket_ms: int) -> list[tuple[int, str, int]]:
        """:meth:`HistogramStore.histogram`, awaited."""
        ...


class AsyncSnapshotStoreTier(AsyncStore, Protocol):
    """The async twin of :class:`SnapshotStoreTier`."""

    async def load_snapshot(
        self, workspace: str, event_id: str, projection: str, code_version: str
    ) -> Snapshot | None:
        """:meth:`SnapshotStoreTier.load_snapshot`, awaited."""
        ...

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """:meth:`SnapshotStoreTier.save_snapshot`, awaited."""
        ...


#: The wider tiers, blocking -> async twin.
TIERS: dict[type, type] = {
    ReplayStore: AsyncReplayStore,
    StreamStore: AsyncStreamStore,
    FollowStore: AsyncFollowStore,
    HistogramStore: AsyncHistogramStore,
    SnapshotStoreTier: AsyncSnapshotStoreTier,
}
_SYNC_OF = {a: s for s, a in TIERS.items()}

# What each tier means to a user, and what to do when a store lacks it.
_MEANING: dict[type, tuple[str, str]] = {
    Store: ("append/query/close", "pass a store object or a store URL such as sqlite:///audit.db"),
    ReplayStore: (
        "reading oldest first (history in pages)",
        "the history is read newest first and reversed instead; use the SQLite or Tinybird store "
        "for long streams",
    ),
    StreamStore: (
        "stream revisions and expected_revision",
        "it has no atomic check-and-append; use the SQLite store (or auditbird.testing.MemoryStore "
        "in tests) for event-sourced writers",
    ),
    FollowStore: (
        "commit positions (follow, read_committed)",
        "follow a SQLite store and relay it to this one (`auditbird relay`)",
    ),
    HistogramStore: ("counting events over time (histogram)", "use the SQLite store, or count with list()"),
    SnapshotStoreTier: (
        "projection snapshots",
        "project with snapshots=False, or keep the events in a SQLite file",
    ),
}


def async_tier(tier: type) -> type:
    """The async twin of a blocking tier (``Store`` -> ``AsyncStore``).

    >>> async_tier(StreamStore) is AsyncStreamStore
    True
    """
    if tier is Store:
        return AsyncStore
    return TIERS[tier]


def tiers_of(store: object) -> frozenset[type]:
    """The wider tiers a store declares (blocking or async, as its class inherits them).

    >>> from auditbird.testing import MemoryStore
    >>> sorted(t.__name__ for t in tiers_of(MemoryStore()))
    ['FollowStore', 'HistogramStore', 'ReplayStore', 'SnapshotStoreTier', 'StoredCopyStore', 'StreamStore']
    """
    mro = type(store).__mro__
    return frozenset(t for t in (*TIERS, *TIERS.values()) if t in mro)


def supports(store: object, tier: type) -> bool:
    """Whether ``store`` declares ``tier`` (the base tiers: whether it has their methods).

    Declared, not discovered: a store with a ``revision`` method that does not inherit
    :class:`StreamStore` does not support it, because nobody promised its semantics."""
    cls: Any = type(store)
    return _supports(cls, tier)


@lru_cache(maxsize=1_024)
def _supports(cls: type, tier: type) -> bool:
    # Per class, not per call: a runtime-checkable isinstance costs ~10 µs, a publish ~15 µs.
    if tier is Store or tier is AsyncStore:
        return all(callable(getattr(cls, name, None)) for name in _BASE_METHODS[tier])
    return tier in cls.__mro__


_BASE_METHODS = {Store: ("append", "query", "close"), AsyncStore: ("append", "query", "aclose")}


def require(store: T, tier: type) -> T:
    """``store`` if it declares ``tier``, else :class:`UnsupportedOperation` naming the store,
    the capability and what to do instead. The one place capabilities are checked."""
    if supports(store, tier):
        return store
    key = _SYNC_OF.get(tier, Store if tier is AsyncStore else tier)
    what, advice = _MEANING.get(key, (tier.__name__, "use a store that declares it"))
    raise UnsupportedOperation(f"{store_name(store)} does not support {what}: {advice}")


def store_name(store: Any) -> str:
    """The class name of a store, for messages; a wrapper names what it wraps.

    >>> from auditbird.stores.threaded import threaded
    >>> from auditbird.testing import MemoryStore
    >>> store_name(MemoryStore()), store_name(threaded(MemoryStore()))
    ('MemoryStore', 'ThreadedStore(MemoryStore)')
    """
    inner = getattr(store, "sync", None)  # ThreadedStore and the native async twins keep one
    return type(store).__name__ if inner is None else f"{type(store).__name__}({type(inner).__name__})"


# -- the stored-copy tier (issue #11) ---------------------------------------------------------
# Kept in one hunk at the end of the module, beside the tiers above rather than among them.


class StoredCopyStore(Store, Protocol):
    """``append`` says which rows were not stored as given, so a publish returns what is
    stored without reading it back.

    It returns ``{index in rows: the row as stored}`` for a row whose ``(workspace, uid)`` was
    already taken (the first copy, which stays; a uid repeated within ``rows`` is taken by its
    first occurrence) or which the store filed otherwise (the service files a row without a
    workspace in its key's); ``{}`` when every row was stored as given, which must cost no read
    (SQLite: the insert's own change count). One write method, so a subclass that overrides
    ``append`` is never bypassed: if it returns None, the facade only knows what it sent.
    """

    def append(self, rows: Sequence[Row]) -> dict[int, Row]:
        """:meth:`Store.append`; the rows not stored as given, by index, as stored."""
        ...


class AsyncStoredCopyStore(AsyncStore, Protocol):
    """The async twin of :class:`StoredCopyStore`."""

    async def append(self, rows: Sequence[Row]) -> dict[int, Row]:
        """:meth:`StoredCopyStore.append`, awaited."""
        ...


TIERS[StoredCopyStore] = AsyncStoredCopyStore
_SYNC_OF[AsyncStoredCopyStore] = StoredCopyStore
_MEANING[StoredCopyStore] = (
    "answering the stored copy of a re-published uid",
    "publish returns the event as submitted; read the stored copy with log.get(uid)",
)
__all__ += ["StoredCopyStore", "AsyncStoredCopyStore"]
from collections.abc import Iterator  # noqa: E402 - the provable tier's own hunk, kept apart


class ProvableStore(Store, Protocol):
    """A Merkle tree per workspace over the events in commit order (RFC 9162), kept in the
    append's transaction, with complete subtrees stored every 4th level: the reads behind inclusion and
    consistency proofs, checkpoints and ``auditbird verify`` (:mod:`auditbird.provable`)."""

    def tree_size(self, workspace: str) -> int:
        """How many leaves the workspace's tree holds."""
        ...

    def tree_nodes(self, workspace: str, nodes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored hashes of complete subtrees ``(level, index)`` (missing ones left out)."""
        ...

    def tree_index(self, workspace: str, uid: str) -> int | None:
        """The leaf index of the event ``uid``, or None when the tree does not hold it."""
        ...

    def tree_leaves(self, workspace: str, start: int, limit: int) -> list[tuple[int, int, bytes]]:
        """``(index, position, leaf_hash)`` of up to ``limit`` leaves from ``start``, in order."""
        ...

    def iter_rows(self, workspace: str, batch: int = 5_000) -> Iterator[Row]:
        """The workspace's stored rows in commit order, page by page."""
        ...


__all__ += ["ProvableStore"]
_MEANING[ProvableStore] = (
    "Merkle proofs and signed checkpoints",
    "keep the events in a SQLite file (or relay them to one with `auditbird relay`) and prove from there",
)
