"""Group commit for ``AsyncAuditLog``: tasks publishing to one SQLite log share durable
commits, and a failing publish fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from auditbird import AsyncAuditLog, ConflictError, Event
from auditbird.stores.sqlite import SQLiteStore


async def wait_queued(store: SQLiteStore, n: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds  # ends a hang only; the test asserts counts
    while len(store._group._queue) < n:
        assert time.monotonic() < deadline, f"timed out waiting for {n} queued publishes"
        await asyncio.sleep(0.005)


def test_sixteen_tasks_publishing_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.db"

    async def main() -> list[str]:
        async with AsyncAuditLog(f"sqlite:///{path}") as log:

            async def task(t: int) -> list[str]:
                out = []
                for i in range(25):
                    e = await log.publish_audit_log({"id": f"m:{t}", "action": "a.b", "metadata": {"i": i}})
                    out.append(e.uid)
                return out

            per_task = await asyncio.gather(*(task(t) for t in range(16)))
            for t in range(16):
                assert [e.metadata["i"] async for e in log.history(f"m:{t}")] == list(range(25))  # type: ignore[index]
            return [u for uids in per_task for u in uids]

    uids = asyncio.run(main())
    assert len(set(uids)) == 400
    conn = sqlite3.connect(path)
    assert {u for (u,) in conn.execute("SELECT uid FROM audit_log")} == set(uids)
    assert conn.execute("SELECT min(position), max(position), count(*) FROM audit_log").fetchone() == (
        1,
        400,
        400,
    )
    conn.close()


def test_tasks_queued_behind_a_commit_share_one_and_fail_alone(tmp_path: Path) -> None:
    """More tasks than the loop's default thread pool holds queue into one group (appends get
    threads of their own); a stale ``expected_revision`` among them fails only itself."""
    store = SQLiteStore(tmp_path / "a.db")

    async def main() -> list[Any]:
        log = AsyncAuditLog(store)
        await log.publish_audit_log({"id": "s:1", "action": "a.b"})
        with store._lock:  # a commit "in flight": every publish below queues behind it
            pending = [
                asyncio.ensure_future(log.publish_audit_log({"id": f"m:{i}", "action": "a.b"}))
                for i in range(15)
            ]
            await wait_queued(store, 15)
            pending.append(
                asyncio.ensure_future(
                    log.publish_audit_log({"id": "s:1", "action": "x.y"}, expected_revision=0)
                )
            )
            await wait_queued(store, 16)
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert (store._group.commits, store._group.requests) == (3, 17)  # 1, the held leader, 15 together
        assert len((await log.list(limit=100)).events) == 16
        await log.close()
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, Event) for r in results[:15])
    assert isinstance(results[15], ConflictError)
