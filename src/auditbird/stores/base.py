"""What a store is: a transport for rows. It knows nothing of actions or schemas.

The base tier is :class:`Store` (and its async twin :class:`AsyncStore`); the wider tiers a
store may declare (streams, following, histograms, snapshots) are in
:mod:`auditbird.stores.capabilities`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from ..query import Query
from ..row import COLUMNS, Row

__all__ = ["Row", "Store", "AsyncStore", "COLUMNS"]


@runtime_checkable
class Store(Protocol):
    """The base tier, a few methods like an httpx transport; the :class:`AuditLog` facade
    holds the rest.

    ``append`` stores all rows or none; a row whose ``uid`` is already stored in its
    workspace is skipped (a retried publish stores nothing twice: the first copy wins). It
    returns once the rows are durable, with None, or on a store of the stored-copy tier
    (:class:`~auditbird.stores.capabilities.StoredCopyStore`) the rows it did not store as
    given. ``query`` answers newest first (``timestamp`` desc,
    ``uid`` desc) with the keyset ``after``; other orders belong to wider tiers.

    >>> from auditbird.testing import MemoryStore
    >>> isinstance(MemoryStore(), Store)
    True
    """

    def append(self, rows: Sequence[Row]) -> Mapping[int, Row] | None:
        """Store ``rows`` durably, all or none; a uid already stored in its workspace is skipped."""
        ...

    def query(self, query: Query) -> list[Row]:
        """The rows ``query`` matches, newest first, strictly after ``query.after``, up to its limit."""
        ...

    def close(self) -> None:
        """Release connections (a buffered store sends what it holds first)."""
        ...


@runtime_checkable
class AsyncStore(Protocol):
    """The async twin of :class:`Store`: ``append``, ``query`` and ``aclose`` coroutines."""

    async def append(self, rows: Sequence[Row]) -> Mapping[int, Row] | None:
        """:meth:`Store.append`, awaited."""
        ...

    async def query(self, query: Query) -> list[Row]:
        """:meth:`Store.query`, awaited."""
        ...

    async def aclose(self) -> None:
        """:meth:`Store.close`, awaited."""
        ...
