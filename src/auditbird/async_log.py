"""``AsyncAuditLog``: every method of :class:`~auditbird.AuditLog`, as coroutines.

Both facades drive the same operations (:class:`~auditbird._facade.LogCore`); this one awaits
each store call. A blocking store runs in worker threads (:func:`~auditbird.stores.threaded.threaded`,
keeping every tier it declares); stores with a native async client (Tinybird, the service)
hand over their async twin. There is no hidden blocking log behind event sourcing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar, Unpack

from ._facade import Filters, Histogram, LogCore, Page, TimeArg
from ._ops import Call, Op, WaitForCommit, aiterate, arun
from .actions import ActionRegistry
from .erasure.keys import KeyNotInMemory, keys_in_memory_only
from .event import Event
from .history import PAGE_SIZE, Recorded
from .log import resolve_store
from .projections import Projection
from .provable import aio
from .provable.proofs import ConsistencyProof, InclusionProof
from .stores.base import AsyncStore, Store
from .stores.capabilities import (
    AsyncCommitWaiter,
    AsyncSnapshotStoreTier,
    AsyncTwinStore,
    FollowStore,
    async_commit_waiter,
    supports,
)
from .stores.threaded import ThreadedStore, threaded
from .tinybird.config import Tinybird
from .validation import DEFAULT_LIMITS, Limits

__all__ = ["AsyncAuditLog", "ThreadedStore", "as_async_store"]

P = TypeVar("P", bound=Projection)
T = TypeVar("T")


def as_async_store(store: Any) -> AsyncStore:
    """An async store for ``store``: itself, its native async twin, or a threaded face."""
    if isinstance(store, AsyncStore):
        return store
    if supports(store, AsyncTwinStore):
        twin: AsyncStore = store.async_twin()
        return twin
    return threaded(store)


class AsyncAuditLog(LogCore):
    """The async twin of :class:`~auditbird.AuditLog`: the same methods, awaited.

    >>> import asyncio
    >>> from auditbird.testing import MemoryStore
    >>> async def main():
    ...     async with AsyncAuditLog(MemoryStore()) as log:
    ...         await log.publish_audit_log({"id": "monitor:1", "action": "monitor.down"})
    ...         return [e.action async for e in log.history("monitor:1")]
    >>> asyncio.run(main())
    ['monitor.down']
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
        self.store: AsyncStore = as_async_store(resolve_store(store, tb, store_options))
        self._attach_subject_keys(self.store)  # personal fields: auditbird.erasure

    # -- writes ---------------------------------------------------------------------------

    async def publish_audit_log(
        self, event: Mapping[str, Any] | Event, *, expected_revision: int | None = None
    ) -> Event:
        """:meth:`AuditLog.publish_audit_log <auditbird.AuditLog.publish_audit_log>`, awaited."""
        if self._subject_keys is None:
            return await arun(self.store, self._publish_op(event, expected_revision))
        submitted, row = await self._prepare_off_loop(self._prepare_one, event)
        return (await arun(self.store, self._publish_prepared_op([submitted], [row], expected_revision)))[0]

    publish = publish_audit_log

    async def publish_many(
        self, events: Sequence[Mapping[str, Any] | Event], *, expected_revision: int | None = None
    ) -> list[Event]:
        """:meth:`AuditLog.publish_many <auditbird.AuditLog.publish_many>`, awaited."""
        if self._subject_keys is None:
            return await arun(self.store, self._publish_many_op(events, expected_revision))
        submitted, rows = await self._prepare_off_loop(self._prepare_many, events)
        return await arun(self.store, self._publish_prepared_op(submitted, rows, expected_revision))

    @staticmethod
    async def _prepare_off_loop(prepare: Callable[[Any], T], items: Any) -> T:
        """``prepare(items)`` (validate and seal) on the loop while every subject key it needs
        is in memory; else on a thread, where the key file or database is read or written."""
        try:
            with keys_in_memory_only():
                return prepare(items)
        except KeyNotInMemory:
            return await asyncio.to_thread(prepare, items)

    async def publish_change(
        self,
        action: str,
        event_id: str,
        *,
        before: Any = None,
        after: Any = None,
        actor: Mapping[str, Any] | None = None,
        targets: list[Mapping[str, Any]] | None = None,
        mask: Iterable[str] = (),
        drop: Iterable[str] = (),
        expected_revision: int | None = None,
        **fields: Any,
    ) -> Event | None:
        """:meth:`AuditLog.publish_change <auditbird.AuditLog.publish_change>`, awaited."""
        op = self._publish_change_op(
            action,
            event_id,
            before=before,
            after=after,
            actor=actor,
            targets=targets,
            mask=mask,
            drop=drop,
            expected_revision=expected_revision,
            **fields,
        )
        return await arun(self.store, op)

    async def revision(self, event_id: str, *, workspace: str | None = None) -> int:
        """:meth:`AuditLog.revision <auditbird.AuditLog.revision>`, awaited."""
        return await arun(self.store, self._revision_op(event_id, workspace))

    # -- reads ----------------------------------------------------------------------------

    async def get_audit_log(
        self, event_id: str, *, workspace: str | None = None, limit: int | None = None
    ) -> list[Event]:
        """:meth:`AuditLog.get_audit_log <auditbird.AuditLog.get_audit_log>`, awaited."""
        return await arun(self.store, self._stream_op(event_id, workspace, limit))

    async def list(self, *, limit: int = 50, cursor: str | None = None, **filters: Unpack[Filters]) -> Page:
        """:meth:`AuditLog.list <auditbird.AuditLog.list>`, awaited."""
        return await arun(self.store, self._list_op(limit, cursor, filters))

    def iter_events(
        self, *, page_size: int = 1_000, cursor: str | None = None, **filters: Unpack[Filters]
    ) -> AsyncIterator[Event]:
        """:meth:`AuditLog.iter_events <auditbird.AuditLog.iter_events>`, as an async iterator."""
        return aiterate(self.store, self._iter_op(page_size, cursor, filters))

    async def get(self, uid: str, *, workspace: str | None = None) -> Event | None:
        """:meth:`AuditLog.get <auditbird.AuditLog.get>`, awaited."""
        return await arun(self.store, self._get_op(uid, workspace, missing_ok=True))

    async def event(self, uid: str, *, workspace: str | None = None) -> Event:
        """:meth:`AuditLog.event <auditbird.AuditLog.event>`, awaited (raises NotFound)."""
        found = await arun(self.store, self._get_op(uid, workspace, missing_ok=False))
        assert found is not None
        return found

    async def histogram(self, *, buckets: int = 60, **filters: Unpack[Filters]) -> Histogram:
        """:meth:`AuditLog.histogram <auditbird.AuditLog.histogram>`, awaited."""
        return await arun(self.store, self._histogram_op(buckets, filters))

    # -- event sourcing -------------------------------------------------------------------

    def history(
        self,
        event_id: str,
        *,
        after_revision: int | None = None,
        as_of: TimeArg = None,
        workspace: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> AsyncIterator[Event]:
        """:meth:`AuditLog.history <auditbird.AuditLog.history>`, as an async iterator."""
        return aiterate(self.store, self._history_op(event_id, after_revision, as_of, workspace, page_size))

    async def project(
        self,
        event_id: str,
        projection: type[P],
        *,
        as_of: TimeArg = None,
        workspace: str | None = None,
        snapshots: bool = True,
    ) -> P:
        """:meth:`AuditLog.project <auditbird.AuditLog.project>`, awaited."""
        op = self._project_op(event_id, projection, as_of=as_of, workspace=workspace, snapshots=snapshots)
        return await arun(self.store, op)

    async def snapshot(self, event_id: str, projection: type[P], *, workspace: str | None = None) -> P:
        """:meth:`AuditLog.snapshot <auditbird.AuditLog.snapshot>`, awaited."""
        op = self._project_op(event_id, projection, workspace=workspace, save_snapshot=True)
        return await arun(self.store, op)

    @property
    def snapshots(self) -> AsyncSnapshotStoreTier | None:
        """The store, if it keeps projection snapshots (the snapshot tier), else None."""
        return self.store if supports(self.store, AsyncSnapshotStoreTier) else None  # type: ignore[return-value]

    def follow(
        self,
        after: int = 0,
        *,
        event_id: str | None = None,
        action: str | Sequence[str] | None = None,
        workspace: str | None = None,
        batch: int = 500,
        poll_interval: float = 0.2,
        idle_timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> AsyncIterator[Recorded]:
        """:meth:`AuditLog.follow <auditbird.AuditLog.follow>`, as an async iterator."""
        op = self._follow_op(
            after,
            event_id=event_id,
            action=action,
            workspace=workspace,
            batch=batch,
            poll_interval=poll_interval,
            idle_timeout=idle_timeout,
            stop=stop,
        )
        waiter = async_commit_waiter(self.store)
        return aiterate(self.store, op if waiter is None else _woken_by_commits(op, waiter))

    # -- provable history (auditbird.provable, in a worker thread) -----------------------

    async def prove(
        self, uid: str, *, size: int | None = None, workspace: str | None = None
    ) -> InclusionProof:
        """:func:`auditbird.provable.prove` of event ``uid``, awaited."""
        return await aio.prove(self, uid, size=size, workspace=workspace)

    async def consistency(
        self, old: int, new: int | None = None, *, workspace: str | None = None
    ) -> ConsistencyProof:
        """:func:`auditbird.provable.consistency` from ``old`` to ``new`` leaves, awaited."""
        return await aio.consistency(self, old, new, workspace=workspace)

    async def checkpoint(self, *, workspace: str | None = None) -> str:
        """A signed checkpoint of the tree as it is now (``auditbird checkpoint``), awaited."""
        return await aio.checkpoint(self, workspace=workspace)

    # -- lifecycle ------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the store."""
        await self.store.aclose()

    async def __aenter__(self) -> AsyncAuditLog:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _woken_by_commits(op: Op[None], waiter: AsyncCommitWaiter) -> Op[None]:
    """``op`` with each :class:`WaitForCommit` awaited on ``waiter`` (PostgreSQL's LISTEN/NOTIFY)
    instead of the async driver's sleep of ``poll_interval``: an idle follower sends nothing."""
    resume: Any = op.send
    value: Any = None
    while True:
        try:
            step = resume(value)
        except StopIteration:
            return
        if isinstance(step, WaitForCommit):
            step = Call(FollowStore, partial(_wait_for_commit, waiter, step))
        try:
            value, resume = (yield step), op.send
        except GeneratorExit:
            op.close()
            raise
        except Exception as exc:  # the driver hands a failed step back: so does this wrapper
            value, resume = exc, op.throw


def _wait_for_commit(waiter: AsyncCommitWaiter, step: WaitForCommit, _store: object) -> Any:
    return waiter.wait_for_commit_async(step.token, step.timeout, step.stop)
