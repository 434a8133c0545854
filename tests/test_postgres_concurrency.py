"""Several processes writing one PostgreSQL database at once, with readers and a follower, and a
writer killed with SIGKILL mid-batch: nothing lost, nothing twice, positions gap-free in commit
order, every batch all or nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from auditbird import AuditLog

WRITERS, PER_WRITER = 4, 5_000

WRITER = """
import sys
from auditbird import AuditLog
url, w, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with AuditLog(url) as log:
    i = 0
    while i < n:
        if i < n // 2:  # half as single durable publishes, half in batches of 50
            log.publish_audit_log({"id": f"s:{w}", "action": "w.one", "metadata": {"w": w, "i": i}})
            i += 1
        else:
            size = min(50, n - i)
            log.publish_many(
                [{"id": f"s:{w}", "action": "w.many", "metadata": {"w": w, "i": i + k}} for k in range(size)]
            )
            i += size
"""

KILLED = """
import sys
from auditbird import AuditLog
url = sys.argv[1]
with AuditLog(url) as log:
    b = 0
    while True:
        batch = [{"id": "k:1", "action": "k.batch", "metadata": {"b": b, "k": k}} for k in range(1000)]
        log.publish_many(batch)
        b += 1
        print(b, flush=True)
"""


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.slow
def test_four_writers_readers_a_follower_and_a_killed_writer(postgres_url: str) -> None:
    log = AuditLog(postgres_url)
    log.publish_audit_log({"id": "start", "action": "a.start"})  # tables exist before the race
    stop = threading.Event()
    followed: list[tuple[int, str]] = []
    walks: list[list[tuple[int, str]]] = []
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            for recorded in log.follow(stop=stop, batch=1_000):
                followed.append((recorded.position, recorded.event.uid))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        try:
            with AuditLog(postgres_url) as reader:
                while not stop.is_set():
                    seen, cursor = [], None
                    while True:
                        page = reader.list(limit=500, cursor=cursor)
                        seen.extend((e.timestamp, e.uid) for e in page.events)
                        cursor = page.next_cursor
                        if cursor is None:
                            break
                    walks.append(seen)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=follow)] + [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, postgres_url, str(w), str(PER_WRITER)],
            env=_env(),
            stderr=subprocess.PIPE,
        )
        for w in range(WRITERS)
    ]
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED, postgres_url], env=_env(), stdout=subprocess.PIPE, text=True
    )
    assert killed.stdout is not None
    for _ in range(3):  # let it commit three batches, then kill it in the middle of later ones
        killed.stdout.readline()
    time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(30)
    for proc in writers:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()

    total = log.store.last_position()
    deadline = time.monotonic() + 120
    while len(followed) < total and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert errors == []

    with psycopg.connect(postgres_url) as conn:
        sql = "SELECT position, uid, action, metadata FROM audit_log ORDER BY position"
        rows = conn.execute(sql).fetchall()
    # Gap-free positions, every uid once.
    assert [r[0] for r in rows] == list(range(1, total + 1))
    assert len({r[1] for r in rows}) == total
    # Every writer's events, once each, in its own order.
    for w in range(WRITERS):
        mine = [json.loads(r[3])["i"] for r in rows if r[2].startswith("w.") and json.loads(r[3])["w"] == w]
        assert mine == list(range(PER_WRITER))
    # The killed writer's batches: each whole or absent, the committed ones contiguous from 0.
    batches: dict[int, int] = {}
    for r in rows:
        if r[2] == "k.batch":
            b = json.loads(r[3])["b"]
            batches[b] = batches.get(b, 0) + 1
    assert len(batches) >= 3
    assert set(batches.values()) == {1_000}
    assert sorted(batches) == list(range(len(batches)))
    # The follower saw every commit once, in position order.
    assert followed == [(r[0], r[1]) for r in rows]
    # Readers: each walk newest first without repeats (events committed mid-walk may be missed).
    assert walks
    for seen in walks:
        assert seen == sorted(set(seen), reverse=True)
    log.close()
