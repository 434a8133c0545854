"""What a store is: a transport for rows. It knows nothing of actions or schemas."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from ..query import Query

__all__ = ["Row", "Store", "AsyncStore", "COLUMNS"]

COLUMNS = (
    "uid",
    "workspace",
    "id",
    "action",
    "actor",
    "targets",
    "metadata",
    "timestamp",
    "version",
)


class Row(NamedTuple):
    """A stored event: the same columns in every store (DESIGN.md). JSON fields are strings."""

    uid: str
    workspace: str
    id: str
    action: str
    actor: str  # JSON object
    targets: str  # JSON array, '[]' when empty, never NULL
    metadata: str | None  # JSON object or NULL
    timestamp: int  # ms since epoch, UTC
    version: int
    position: int | None = None  # commit order, on stores that have one


@runtime_checkable
class Store(Protocol):
    """A few methods, like an httpx transport; the :class:`AuditLog` facade holds the rest.

    ``append`` stores all rows or none; a row whose ``uid`` is already stored is skipped
    (a retried publish stores nothing twice). It returns once the rows are durable.
    ``query`` answers newest first (``timestamp`` desc, ``uid`` desc) unless the query
    asks otherwise.
    """

    def append(self, rows: Sequence[Row]) -> None: ...

    def query(self, query: Query) -> list[Row]: ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncStore(Protocol):
    """The async twin of :class:`Store`."""

    async def append(self, rows: Sequence[Row]) -> None: ...

    async def query(self, query: Query) -> list[Row]: ...

    async def aclose(self) -> None: ...
