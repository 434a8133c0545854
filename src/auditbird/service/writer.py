"""Group commit: concurrent requests' rows go to the store in one ``append``.

A blocking store call (an SQLite commit waits for fsync) costs the same for one row as for a
thousand, so while one commit is in flight the rows of every request that arrives queue up and
go in the next one. Each request still gets its answer only after the commit holding its rows
returned (a 201 is on disk). If a merged commit fails, each request's rows are retried alone,
so one request's failure never fails another's, and each stays all or nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .._errors import AuditError, StoreUnavailable
from ..query import Query
from ..stores.base import Row, Store
from ..stores.capabilities import AsyncStoredCopyStore, StoredCopyStore, supports

__all__ = ["GroupCommitStore", "WriterView", "KEPT"]

T = TypeVar("T")

# Set by a request handler to a dict of its own: every append made for the request (on the loop
# or from its ingest thread) adds the rows the store did not keep as given, by index, so a
# `return=minimal` answer can still name them (a re-published uid's first copy).
KEPT: contextvars.ContextVar[dict[int, Row] | None] = contextvars.ContextVar("auditbird_kept", default=None)

# Threads that publish a large request body (parse, validate, encode, then wait for the commit
# holding its rows). Each waits on the group commit most of its time, so there are more of them
# than cores: enough for that many requests to share one commit.
INGEST_THREADS = 16


class GroupCommitStore(AsyncStoredCopyStore):
    """An :class:`~auditbird.stores.base.AsyncStore` over a blocking store, with group commit.

    Each request's ``append`` answers its share of what the store kept otherwise (a
    re-published uid's first copy), so the service answers the events as stored."""

    def __init__(self, store: Store, *, max_rows: int = 20_000) -> None:
        self.sync = store
        self.max_rows = max_rows
        self._pending: deque[tuple[Sequence[Row], asyncio.Future[dict[int, Row]]]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # Commits run on a thread of their own, not in the loop's default pool where reads
        # (searches, live-tail polls) queue: a flood of reads never delays a write's turn.
        self._commits = ThreadPoolExecutor(1, thread_name_prefix="auditbird-commit")
        self._ingest = ThreadPoolExecutor(INGEST_THREADS, thread_name_prefix="auditbird-cpu-ingest")

    async def in_ingest_thread(self, fn: Callable[[WriterView], T]) -> T:
        """``fn(view)`` on an ingest thread, where ``view`` is this writer as a blocking store:
        the library's publish runs there whole (validation and encoding off the event loop),
        and its rows still join this loop's group commit."""
        loop = asyncio.get_running_loop()
        # In the request's context (its KEPT holder): the thread's appends, scheduled back on
        # the loop from there, carry it along.
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._ingest, context.run, fn, WriterView(self, loop))

    async def _in_commit_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._commits, fn, *args)

    async def append(self, rows: Sequence[Row]) -> dict[int, Row]:
        if not rows:
            return {}
        if self._closed:
            raise StoreUnavailable("the service is shutting down; retry")
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._run())
        future: asyncio.Future[dict[int, Row]] = loop.create_future()
        self._pending.append((rows, future))
        assert self._wakeup is not None
        self._wakeup.set()
        kept = await future
        holder = KEPT.get()
        if holder is not None:
            holder.update(kept)
        return kept

    def _write(self, rows: Sequence[Row]) -> dict[int, Row]:
        kept = self.sync.append(rows)
        return dict(kept or {}) if supports(self.sync, StoredCopyStore) else {}

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                group: list[tuple[Sequence[Row], asyncio.Future[dict[int, Row]]]] = []
                size = 0
                while self._pending and (not group or size + len(self._pending[0][0]) <= self.max_rows):
                    rows, future = self._pending.popleft()
                    group.append((rows, future))
                    size += len(rows)
                await self._commit(group)
            if self._closed:
                return

    async def _commit(self, group: list[tuple[Sequence[Row], asyncio.Future[dict[int, Row]]]]) -> None:
        merged = group[0][0] if len(group) == 1 else [row for rows, _ in group for row in rows]
        try:
            kept: dict[int, Row] = await self._in_commit_thread(self._write, merged)
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0][1], exc)
                return
            for rows, future in group:  # one request's bad rows must not fail the others
                try:
                    alone: dict[int, Row] = await self._in_commit_thread(self._write, rows)
                except Exception as single:
                    _settle(future, single)
                else:
                    _settle(future, None, alone)
            return
        start = 0
        for rows, future in group:  # each request's share of the merged answer, by its own index
            end = start + len(rows)
            _settle(future, None, {i - start: row for i, row in kept.items() if start <= i < end})
            start = end

    async def query(self, query: Query) -> list[Row]:
        return await asyncio.to_thread(self.sync.query, query)

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None and self._wakeup is not None:
            self._wakeup.set()
            try:
                await asyncio.wait_for(self._task, timeout=30)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        await asyncio.to_thread(self.sync.close)
        self._commits.shutdown(wait=False)
        self._ingest.shutdown(wait=False)


class WriterView(StoredCopyStore):
    """A :class:`GroupCommitStore` seen from an ingest thread: ``append`` hands the rows to
    the loop's group commit and blocks until the commit holding them returned (so the
    blocking :class:`~auditbird.AuditLog` publishes through it, durable as in the loop)."""

    def __init__(self, writer: GroupCommitStore, loop: asyncio.AbstractEventLoop) -> None:
        self.writer = writer
        self.loop = loop
        # The store under it, named as every wrapper names it: the library finds the subject
        # keys through it (auditbird.erasure.keys_for_store), so personal values published
        # from an ingest thread are sealed exactly as on the loop. Writes still go through
        # `append` (the group commit), never to `sync` directly.
        self.sync = writer.sync

    def append(self, rows: Sequence[Row]) -> dict[int, Row]:
        write = self.writer.append(rows)
        try:
            future = asyncio.run_coroutine_threadsafe(write, self.loop)
        except RuntimeError:  # the loop is closed: the service is shutting down
            write.close()
            raise StoreUnavailable("the service is shutting down; retry") from None
        while True:
            # Waits in steps, so a thread never outlives a loop that stopped without running
            # the write (at exit, the interpreter joins this pool's threads).
            try:
                return future.result(timeout=1.0)
            except TimeoutError:
                if self.loop.is_closed() or not self.loop.is_running():
                    future.cancel()
                    raise StoreUnavailable(
                        "the service stopped before the write was confirmed; retry"
                    ) from None

    def query(self, query: Query) -> list[Row]:
        return self.writer.sync.query(query)

    def close(self) -> None:
        """The writer is closed by the service, not by a request."""


def _settle(
    future: asyncio.Future[dict[int, Row]], exc: BaseException | None, kept: dict[int, Row] | None = None
) -> None:
    if future.done():  # the request was cancelled (client went away); its rows may be stored
        return
    if exc is None:
        future.set_result(kept or {})
    elif isinstance(exc, AuditError):
        future.set_exception(exc)
    else:
        future.set_exception(StoreUnavailable(f"store write failed: {exc}"))
