"""``AsyncAuditLog``: the same methods as :class:`AuditLog`, as coroutines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeVar

from ._errors import UnsupportedOperation
from ._facade import Histogram, LogCore, Page, TimeArg
from .actions import ActionRegistry
from .event import Event
from .log import AuditLog, _resolve_store
from .projections import Projection
from .query import Query
from .stores.base import AsyncStore, Row, Store
from .tinybird.config import Tinybird
from .validation import DEFAULT_LIMITS, Limits

__all__ = ["AsyncAuditLog"]

P = TypeVar("P", bound=Projection)


class ThreadedStore:
    """An async face on a blocking store: each call runs in a worker thread."""

    def __init__(self, store: Store) -> None:
        self.sync = store

    async def append(self, rows: Sequence[Row]) -> None:
        await asyncio.to_thread(self.sync.append, rows)

    async def query(self, query: Query) -> list[Row]:
        return await asyncio.to_thread(self.sync.query, query)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.sync.close)


def _as_async(store: Any) -> AsyncStore:
    if hasattr(store, "aclose"):
        return store
    twin = getattr(store, "async_twin", None)
    if callable(twin):  # stores with a native async client (Tinybird, the service) offer one
        return twin()
    return ThreadedStore(store)


class AsyncAuditLog(LogCore):
    """The async twin of :class:`AuditLog`.

    >>> async with AsyncAuditLog("sqlite:///audit.db") as log:
    ...     await log.publish_audit_log({"id": "monitor:1", "action": "monitor.down"})
    """

    def __init__(
        self,
        store: str | Store | AsyncStore | None = None,
        *,
        tb: Tinybird | None = None,
        workspace: str = "",
        strict: bool = False,
        registry: ActionRegistry | None = None,
        limits: Limits = DEFAULT_LIMITS,
        **store_options: Any,
    ) -> None:
        super().__init__(workspace=workspace, strict=strict, registry=registry, limits=limits)
        if isinstance(store, AsyncStore):
            self.store: AsyncStore = store
        else:
            self.store = _as_async(_resolve_store(store, tb, store_options))

    async def publish_audit_log(
        self, event: Mapping[str, Any] | Event, *, expected_revision: int | None = None
    ) -> Event:
        stored, row = self._prepare_one(event)
        await self._append([row], expected_revision)
        return stored

    publish = publish_audit_log

    async def publish_many(
        self, events: Sequence[Mapping[str, Any] | Event], *, expected_revision: int | None = None
    ) -> list[Event]:
        stored, rows = self._prepare_many(events)
        await self._append(rows, expected_revision)
        return stored

    def _sync_store(self) -> Any:
        """The blocking store behind a :class:`ThreadedStore` (for optional store features)."""
        return self.store.sync if isinstance(self.store, ThreadedStore) else self.store

    async def _append(self, rows: list[Row], expected_revision: int | None) -> None:
        if expected_revision is None:
            await self.store.append(rows)
            return
        sync = self._sync_store()
        self._check_revision_support(sync)
        await asyncio.to_thread(sync.append, rows, expected_revision=expected_revision)

    async def revision(self, event_id: str, *, workspace: str | None = None) -> int:
        sync = self._sync_store()
        self._check_revision_support(sync)
        ws = self.workspace if workspace is None else workspace
        return int(await asyncio.to_thread(sync.revision, ws, event_id))

    async def histogram(
        self, *, buckets: int = 60, since: TimeArg = None, until: TimeArg = None, **filters: Any
    ) -> Histogram:
        q, bucket_ms = self._histogram_query(buckets, since, until, filters)
        fn = self._store_histogram(self._sync_store())
        return self._histogram(q, bucket_ms, await asyncio.to_thread(fn, q, bucket_ms))

    async def get_audit_log(
        self, event_id: str, *, workspace: str | None = None, limit: int | None = None
    ) -> list[Event]:
        rows = await self.store.query(self._stream_query(event_id, workspace, limit))
        return self._decode(rows)

    async def list(
        self,
        *,
        action: str | Sequence[str] | None = None,
        actor_id: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        since: TimeArg = None,
        until: TimeArg = None,
        workspace: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        event_id: str | None = None,
        text: str | None = None,
    ) -> Page:
        q = self._list_query(
            action=action,
            actor_id=actor_id,
            target_type=target_type,
            target_id=target_id,
            since=since,
            until=until,
            workspace=workspace,
            limit=limit,
            cursor=cursor,
            event_id=event_id,
            text=text,
        )
        return self._page(await self.store.query(q), limit)

    async def iter_events(self, *, page_size: int = 1_000, **filters: Any) -> AsyncIterator[Event]:
        cursor = filters.pop("cursor", None)
        while True:
            page = await self.list(limit=page_size, cursor=cursor, **filters)
            for event in page.events:
                yield event
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get(self, uid: str, *, workspace: str | None = None) -> Event | None:
        rows = await self.store.query(
            Query(workspace=self.workspace if workspace is None else workspace, uid=uid, limit=1)
        )
        return self._decode(rows)[0] if rows else None

    # -- event sourcing: the blocking implementation, run in a worker thread ------------------

    def _sync_log(self) -> AuditLog:
        log = self.__dict__.get("_sync_twin")
        if log is None:
            if not isinstance(self.store, ThreadedStore):
                raise UnsupportedOperation(
                    f"{type(self.store).__name__} has no blocking twin for event sourcing; "
                    "use AuditLog, or AsyncAuditLog over a SQLite store"
                )
            log = AuditLog(
                self.store.sync,
                workspace=self.workspace,
                strict=self.strict,
                registry=self.registry,
                limits=self.limits,
            )
            self.__dict__["_sync_twin"] = log
        return log

    async def project(self, event_id: str, projection: type[P], **options: Any) -> P:
        """:meth:`AuditLog.project`, as a coroutine."""
        log = self._sync_log()
        return await asyncio.to_thread(lambda: log.project(event_id, projection, **options))

    async def publish_change(self, action: str, subject: str, **options: Any) -> Event | None:
        """:meth:`AuditLog.publish_change`, as a coroutine."""
        return await asyncio.to_thread(self._sync_log().publish_change, action, subject, **options)

    async def history(self, event_id: str, **options: Any) -> AsyncIterator[Event]:
        """:meth:`AuditLog.history` (oldest first, constant memory), as an async iterator."""
        pages = self._sync_log().history(event_id, **options)
        done = object()
        while (event := await asyncio.to_thread(next, pages, done)) is not done:
            yield event  # type: ignore[misc]

    async def close(self) -> None:
        await self.store.aclose()

    async def __aenter__(self) -> AsyncAuditLog:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
