"""Group commit for threads: concurrent appends share one durable commit.

A durable commit waits for fsync, and one fsync costs the same for one publish as for fifty.
Threads that call :meth:`GroupCommit.submit` queue up; the one at the head of the queue is
the *leader*: it commits its own request together with every request queued behind it, in
one transaction, then wakes them. Requests that arrive while that commit (its fsync) is in
flight wait, and the first of them leads the next commit with all the others. So:

- a lone publisher never waits: it is the head of an empty queue and commits at once;
- each ``submit`` returns only after the commit holding its request returned (durable);
- the commit callback answers each request on its own (a result or an exception): one
  request's failure never fails the others in its group (the SQLite store uses a savepoint
  per request); an exception from the callback itself (the commit failed) fails them all,
  and none of them was stored.

This is the library's mechanism (the service's async writer, ``service/writer.py``, sends
its merged rows through the same store ``append``, so they share commits with threads too).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

# At most this many GIL hand-overs before a commit under concurrency (see GroupCommit._gather).
GATHER_YIELDS = 8

T = TypeVar("T")
R = TypeVar("R")


class _Waiter(Generic[T]):
    """One queued request; ``signal`` is held until the request is answered or promoted to
    leader (a bare lock: cheaper to make than a ``threading.Event`` on every publish)."""

    __slots__ = ("item", "size", "signal", "answered", "result")

    def __init__(self, item: T, size: int) -> None:
        self.item = item
        self.size = size
        self.signal = threading.Lock()
        self.signal.acquire()
        self.answered = False
        self.result: object = None


class GroupCommit(Generic[T, R]):
    """Leader/follower group commit over ``commit(items) -> [result or exception per item]``.

    ``size(item)`` weighs a request (rows); a group holds requests up to ``max_size`` in all
    (always at least one), so one commit's transaction stays bounded.
    """

    def __init__(
        self,
        commit: Callable[[Sequence[T]], Sequence[R | BaseException]],
        *,
        size: Callable[[T], int] = lambda item: 1,
        max_size: int = 20_000,
    ) -> None:
        self._commit = commit
        self._size = size
        self.max_size = max_size
        self._lock = threading.Lock()
        self._queue: deque[_Waiter[T]] = deque()
        self.commits = 0  # how many commits ran (tests and benchmarks read it)
        self.requests = 0  # how many requests they held
        self._last_group = 0
        self._yields = GATHER_YIELDS

    def submit(self, item: T) -> R:
        """Commit ``item`` (with whatever else is queued); its result, or raise its exception."""
        me = _Waiter(item, self._size(item))
        with self._lock:
            self._queue.append(me)
            leads = len(self._queue) == 1
        if not leads:
            try:
                me.signal.acquire()  # answered by a leader, or promoted to lead the next group
            except BaseException:
                # Interrupted (Ctrl-C) while queued: the request is in the queue and may be
                # promoted to lead, and a leader that never leads stalls every thread behind
                # it. See it through (one commit at most), then raise.
                me.signal.acquire()
                if not me.answered:
                    self._lead(me)
                raise
            if me.answered:
                return self._answer(me)
        self._lead(me)
        return self._answer(me)

    def _lead(self, me: _Waiter[T]) -> None:
        if self._last_group > 1:
            self._gather()
        with self._lock:
            group = [me]  # `me` is the head; everything behind it arrived before this commit
            total = me.size
            for waiter in list(self._queue)[1:]:
                if total + waiter.size > self.max_size:
                    break
                group.append(waiter)
                total += waiter.size
        try:
            results: Sequence[R | BaseException] = self._commit([w.item for w in group])
            if len(results) != len(group):
                raise RuntimeError(f"group commit answered {len(results)} of {len(group)} requests")
        except BaseException as exc:  # the commit failed: nothing of the group was stored
            results = [exc] * len(group)
        with self._lock:
            for _ in group:
                self._queue.popleft()
            following = self._queue[0] if self._queue else None
            self.commits += 1
            self._last_group = len(group)
            self.requests += len(group)
        for waiter, result in zip(group, results, strict=True):
            waiter.result = result
            waiter.answered = True
            if waiter is not me:
                waiter.signal.release()
        if following is not None:
            following.signal.release()  # not answered: it leads the next group

    def _gather(self) -> None:
        """Let the publishers the last commit just answered queue again before this one starts.

        Only under concurrency (the last group held several), and no timed wait: each
        ``sleep(0)`` hands the GIL to threads that are ready to run, and the leader goes as
        soon as a hand-over brought nobody new. A lone publisher never comes here."""
        for _ in range(self._yields):
            before = len(self._queue)
            time.sleep(0)
            if len(self._queue) == before:
                return

    @staticmethod
    def _answer(me: _Waiter[T]) -> R:
        result = me.result
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[return-value]
