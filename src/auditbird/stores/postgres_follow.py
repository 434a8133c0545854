"""Following the PostgreSQL store without polling: LISTEN/NOTIFY, and relay positions.

Every append that stores a row sends ``NOTIFY auditbird_commit`` in its own transaction
(:mod:`auditbird.stores.postgres_write`), which PostgreSQL delivers only once it commits. A
:class:`CommitListener` holds one connection that LISTENs, on a thread of its own, and counts
the notifications; a follower that has read everything waits on that count instead of
querying again, so an idle ``follow`` sends nothing to the database.

The wait cannot miss a commit: the first wait of a follower only starts the listener and
returns, so the follower queries once more with LISTEN already active. From then on every
commit after that query raises the count, and the follower compares the count with the one
it saw before its previous query (the *token* it carries), not with "now".

``AsyncAuditLog.follow`` waits on the same count without a thread of its own:
:meth:`CommitListener.wait_async` parks on an :class:`asyncio.Event` that the listener thread
sets through the event loop when a notification arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from ..event import now_ms

__all__ = ["CHANNEL", "CommitListener", "PostgresPositions"]

CHANNEL = "auditbird_commit"


class CommitListener:
    """One LISTENing connection per store, started by the first follower that waits.

    If that connection is lost (a server restart), the listener thread reconnects with
    back-off while the followers keep waiting, and once it LISTENs again it wakes them to read
    once: commits made while it was away are found by that read, none is missed."""

    def __init__(self, connect: Any) -> None:
        self._connect = connect  # () -> a new autocommit psycopg connection
        self._cond = threading.Condition()
        self._count = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._wakers: set[Callable[[], None]] = set()  # async waiters' wake-ups (wait_async)

    def wait(self, token: int | None, timeout: float | None, stop: threading.Event | None) -> int:
        """Block until a commit notified after ``token`` (the value a previous wait returned),
        ``timeout`` seconds, or ``stop``; returns the new token. ``token=None``: start
        listening and return at once (the caller must read again before it waits)."""
        if token is None:
            self._start()
            with self._cond:
                return self._count
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._count == token and not self._closed:
                if stop is not None and stop.is_set():
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                # Wake now and then to look at `stop` (a threading.Event cannot be waited on
                # together with the condition); no query is sent when nothing was committed.
                self._cond.wait(0.1 if left is None else min(left, 0.1))
            return self._count

    async def wait_async(self, token: int | None, timeout: float | None, stop: threading.Event | None) -> int:
        """:meth:`wait` for a coroutine: the same tokens and guarantees, without a blocked thread.

        ``token=None`` starts the listener (connecting, in a worker thread) and returns."""
        if token is None:
            await asyncio.to_thread(self._start)
            with self._cond:
                return self._count
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # that loop is closed: its follower is gone
                loop.call_soon_threadsafe(woken.set)

        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._wakers.add(wake)  # before the check: a commit counted after it sets `woken`
        try:
            while True:
                with self._cond:
                    if self._count != token or self._closed:
                        return self._count
                if stop is not None and stop.is_set():
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                # Slices only to look at `stop` (a threading.Event); nothing is sent meanwhile.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), 0.1 if left is None else min(left, 0.1))
        finally:
            with self._cond:
                self._wakers.discard(wake)
        with self._cond:
            return self._count

    def _start(self) -> None:
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            conn = self._listening_connection()
            self._thread = threading.Thread(target=self._listen, args=(conn,), daemon=True)
            self._thread.start()

    def _listening_connection(self) -> Any:
        conn = self._connect()
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def _listen(self, conn: Any) -> None:
        while not self._closed:
            try:
                # notifies() returns after `timeout` seconds even when idle, so close() is seen.
                got = sum(1 for _ in conn.notifies(timeout=0.5))
            except Exception:  # the connection is lost: reconnect, then have followers read
                conn.close()
                conn = self._reconnect()
                if conn is None:
                    return
                got = 1
            if got:
                with self._cond:
                    self._count += got
                    self._cond.notify_all()
                    wakers = list(self._wakers)
                for wake in wakers:
                    wake()
        conn.close()

    def _reconnect(self) -> Any:
        delay = 0.1
        while not self._closed:
            try:
                return self._listening_connection()
            except Exception:  # still down: wait a little longer each time, up to 2 s
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        return None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread, wakers = self._thread, list(self._wakers)
        for wake in wakers:
            wake()
        if thread is not None:
            thread.join(timeout=5)


class PostgresPositions:
    """A relay's last shipped position, in ``auditbird_relay_position`` of the source database
    (so the position and the events it points into live and die together)."""

    def __init__(self, pool: Any, name: str) -> None:
        self._pool = pool
        self.name = name

    def load(self) -> int:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT position FROM auditbird_relay_position WHERE name = %s", (self.name,)
            ).fetchone()
        return int(row[0]) if row else 0

    def save(self, position: int) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO auditbird_relay_position (name, position, updated_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
                "updated_at = excluded.updated_at",
                (self.name, position, now_ms()),
            )

    def close(self) -> None:
        pass
