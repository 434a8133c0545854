"""An idle follower sends nothing to PostgreSQL: ``AsyncAuditLog.follow`` and ``Relay.run(follow=True)``
wait on LISTEN/NOTIFY, counted statement by statement in the server's own log.

The test database gets ``log_statement = 'all'`` (only it: the other tests' databases log nothing),
so every statement any connection to it runs is a line in the cluster's log. Idle means that no
line is added while the follower waits; a commit then wakes it, and its read shows in the log
(the count can move, so the zero is not a log that records nothing).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from auditbird import AsyncAuditLog, AuditLog
from auditbird.relay import Relay
from auditbird.stores.postgres import PostgresStore

# One line per statement: "statement: ..." (simple protocol) or "execute <name>: ..." (extended).
_STATEMENT = re.compile(r"LOG:  (?:statement|execute [^:]*):")
IDLE_SECONDS = 1.5


class StatementLog:
    """Statements the server ran for one database, read from the cluster's log file."""

    def __init__(self, server: Any, url: str) -> None:
        self.path = Path(server.root) / "server.log"
        dbname = url.rsplit("/", 1)[1]
        with server.admin() as conn:
            conn.execute(f"ALTER DATABASE \"{dbname}\" SET log_statement = 'all'")
        self.mark()

    def mark(self) -> None:
        self._offset = self.path.stat().st_size

    def since_mark(self) -> list[str]:
        with self.path.open("rb") as f:
            f.seek(self._offset)
            text = f.read().decode(errors="replace")
        return [line for line in text.splitlines() if _STATEMENT.search(line)]


def _until(predicate: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_async_follow_sends_no_statement_while_idle_and_wakes_on_a_commit(
    postgres_server: Any, postgres_url: str
) -> None:
    statements = StatementLog(postgres_server, postgres_url)
    got: list[str] = []
    counted: dict[str, list[str]] = {}

    async def main() -> None:
        stop = threading.Event()
        async with AsyncAuditLog(postgres_url) as log:
            await log.publish_audit_log({"id": "m:1", "action": "a.early"})

            async def consume() -> None:
                # A 10 ms poll interval: polling would show as ~150 statements in the window.
                async for recorded in log.follow(poll_interval=0.01, stop=stop):
                    got.append(recorded.event.action)

            task = asyncio.create_task(consume())
            while not got:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # the follower's second read (LISTEN already on) and its wait
            statements.mark()
            await asyncio.sleep(IDLE_SECONDS)
            counted["idle"] = statements.since_mark()
            await log.publish_audit_log({"id": "m:2", "action": "a.late"})
            deadline = time.monotonic() + 30
            while len(got) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            counted["woken"] = statements.since_mark()
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert counted["idle"] == []
    assert got == ["a.early", "a.late"]
    # The publish and the follower's read after the wake-up are in the log: it does count.
    assert any("audit_log" in line and "SELECT" in line for line in counted["woken"])


def test_async_follow_misses_nothing_committed_between_its_read_and_its_wait(postgres_url: str) -> None:
    async def main() -> list[int]:
        got: list[int] = []
        stop = threading.Event()
        async with AsyncAuditLog(postgres_url) as log:

            async def consume() -> None:
                async for recorded in log.follow(stop=stop):
                    got.append(recorded.event.metadata["n"])
                    if len(got) == 200:
                        stop.set()

            task = asyncio.create_task(consume())
            for n in range(200):  # single commits racing the follower's read/wait cycle
                await log.publish_audit_log({"id": "m:1", "action": "a.b", "metadata": {"n": n}})
            await asyncio.wait_for(task, 60)
        return got

    assert asyncio.run(main()) == list(range(200))


def test_async_follow_on_postgres_ends_after_its_idle_timeout(postgres_url: str) -> None:
    async def main() -> list[str]:
        async with AsyncAuditLog(postgres_url) as log:
            await log.publish_audit_log({"id": "m:1", "action": "a.only"})
            return [r.event.action async for r in log.follow(idle_timeout=0.3)]

    assert asyncio.run(main()) == ["a.only"]


def test_relay_follow_sends_no_statement_while_idle_and_ships_the_next_commit(
    postgres_server: Any, postgres_url: str, tmp_path: Path
) -> None:
    statements = StatementLog(postgres_server, postgres_url)
    dest = f"sqlite:///{tmp_path / 'copy.db'}"
    with AuditLog(postgres_url) as log:
        log.publish_audit_log({"id": "m:1", "action": "a.early"})
        relay = Relay(PostgresStore(postgres_url), dest)
        stop = threading.Event()
        shipped: list[int] = []
        thread = threading.Thread(
            target=relay.run,
            kwargs={
                "follow": True,
                "poll_interval": 0.01,
                "stop": stop,
                "on_batch": lambda n, p: shipped.append(p),
            },
        )
        thread.start()
        try:
            _until(lambda: shipped == [1])
            time.sleep(0.3)  # its read with LISTEN on, then its wait
            statements.mark()
            time.sleep(IDLE_SECONDS)
            idle = statements.since_mark()
            log.publish_audit_log({"id": "m:2", "action": "a.late"})
            _until(lambda: shipped == [1, 2])
        finally:
            stop.set()
            thread.join(timeout=10)
        relay.close()
    assert idle == []
    with AuditLog(dest) as copy:
        assert [e.action for e in copy.list(limit=10).events] == ["a.late", "a.early"]


@pytest.mark.parametrize("kind", ["async", "relay"])
def test_a_stop_ends_an_idle_wait_on_postgres(postgres_url: str, tmp_path: Path, kind: str) -> None:
    stop = threading.Event()
    if kind == "relay":
        relay = Relay(PostgresStore(postgres_url), f"sqlite:///{tmp_path / 'copy.db'}")
        thread = threading.Thread(target=relay.run, kwargs={"follow": True, "stop": stop})
    else:

        async def follow() -> None:
            async with AsyncAuditLog(postgres_url) as log:
                async for _ in log.follow(stop=stop):
                    pass

        thread = threading.Thread(target=asyncio.run, args=(follow(),))
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive()  # waiting, with nothing to ship
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    if kind == "relay":
        relay.close()
