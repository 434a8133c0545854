"""What the SQLite trigram text index costs a publish (issue 15.4): CPU per row, with and without it.

Every variant is a fresh store (``synchronous=OFF``: the fsync is not the index's cost, and CPU
time is what is measured, ``time.process_time``), prefilled so the index has segments to merge,
then timed through the library: single publishes, and ``publish_many`` of 1,000. Variants run
interleaved, round by round, so the machine's load falls on all of them alike.

    .venv/bin/python -m bench.text_write                   # 2,000 singles, 20 batches per variant
    .venv/bin/python -m bench.text_write --prefill 100000 --rounds 8

Variants: the store as shipped (triggers keep ``audit_text`` in each commit); no text index
(its triggers dropped: the floor the index is measured against); and FTS5's own knobs on the
shipped store: ``automerge`` (how many segments of a level trigger a merge; 0 = never during
writes, leaving merges to an idle ``'merge'`` command, timed apart), ``crisismerge``, ``pgsz``.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from auditbird import AuditLog
from auditbird.stores.sqlite import SQLiteStore

from .machine import describe

BATCH = 1_000
_REGIONS = ["syd", "ams", "gru", "fra", "iad", "jnb", "hkg", "nrt"]


def _config(key: str, value: int) -> Callable[[sqlite3.Connection], None]:
    def apply(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO audit_text (audit_text, rank) VALUES (?, ?)", (key, value))

    return apply


def _no_index(conn: sqlite3.Connection) -> None:
    for name in ("audit_text_insert", "audit_text_delete", "audit_text_update"):
        conn.execute(f"DROP TRIGGER {name}")


def _deferred(conn: sqlite3.Connection) -> None:
    """The insert trigger dropped: rows are indexed by :func:`_index_tail` after the commits."""
    conn.execute("DROP TRIGGER audit_text_insert")


DEFERRED = "deferred: indexed after every 100 commits"
_DEFER_EVERY = 100


def _index_tail(log: AuditLog, done: list[int]) -> None:
    """The deferred design's indexer, as a writer would run it once idle: one transaction
    indexing every row past the watermark (``done[0]``), then the watermark moved."""
    store: Any = log.store
    with store._lock:
        conn = store._conn
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO audit_text (rowid, id, metadata) "
            "SELECT position, id, metadata FROM audit_log WHERE position > ?",
            (done[0],),
        )
        (done[0],) = conn.execute("SELECT coalesce(max(position), 0) FROM audit_log").fetchone()
        conn.execute("COMMIT")


VARIANTS: dict[str, Callable[[sqlite3.Connection], None] | None] = {
    "text index (shipped: trigger, automerge 4)": None,
    "no text index (floor)": _no_index,
    "automerge 0 (merge when idle)": _config("automerge", 0),
    "automerge 16": _config("automerge", 16),
    "crisismerge 64": _config("crisismerge", 64),
    "pgsz 16000": _config("pgsz", 16_000),
    DEFERRED: _deferred,
}


def _events(rnd: random.Random, n: int, start: int) -> list[dict[str, Any]]:
    """Events shaped like the viewer benchmark's (a subject id, a small metadata JSON)."""
    out = []
    for i in range(start, start + n):
        target = rnd.randrange(1, 5_000)
        metadata: dict[str, Any] = {"region": rnd.choice(_REGIONS), "seq": i}
        if i % 5 == 0:
            interval = rnd.choice([30, 60, 300])
            metadata = {
                "before": {"interval": interval, "name": f"monitor {target}"},
                "after": {"interval": interval * 2, "name": f"monitor {target}"},
                "changed": ["interval"],
            }
        out.append(
            {
                "id": f"monitor:{target}",
                "action": "monitor.updated" if i % 5 == 0 else "monitor.down",
                "actor": {"id": f"user_{rnd.randrange(200)}", "name": "someone"},
                "targets": [{"id": str(target), "type": "monitor"}],
                "metadata": metadata,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefill", type=int, default=50_000, help="rows in each store before timing")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per variant")
    parser.add_argument("--singles", type=int, default=500, help="single publishes per round")
    parser.add_argument("--batches", type=int, default=5, help="batches of 1,000 per round")
    parser.add_argument("--durable", type=int, default=200, help="durable single publishes per round")
    args = parser.parse_args(argv)
    print(f"{describe()}; prefill {args.prefill:,}, {args.rounds} rounds, synchronous=OFF, CPU time")
    rnd = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        logs: dict[str, AuditLog] = {}
        watermark = [0]  # the deferred variant's: rows indexed up to this position
        counter = 0
        for name, setup in VARIANTS.items():
            store = SQLiteStore(Path(tmp) / f"{len(logs)}.db", synchronous="OFF", tree=False)
            if setup is not None:
                setup(store._conn)  # bench-only: the writer's own connection, between commits
            log = AuditLog(store, workspace="w")
            for first in range(0, args.prefill, BATCH):
                log.publish_many(_events(rnd, min(BATCH, args.prefill - first), first))
            if name == DEFERRED:
                _index_tail(log, watermark)
            logs[name] = log
        single = dict.fromkeys(VARIANTS, 0.0)
        batch = dict.fromkeys(VARIANTS, 0.0)
        for _ in range(args.rounds):
            for name, log in logs.items():
                events = _events(rnd, args.singles, counter)
                counter += args.singles
                start = time.process_time()
                for i, event in enumerate(events, 1):
                    log.publish_audit_log(event)
                    if name == DEFERRED and i % _DEFER_EVERY == 0:
                        _index_tail(log, watermark)
                single[name] += time.process_time() - start
                batches = [_events(rnd, BATCH, counter + k * BATCH) for k in range(args.batches)]
                counter += args.batches * BATCH
                start = time.process_time()
                for events in batches:
                    log.publish_many(events)
                    if name == DEFERRED:
                        _index_tail(log, watermark)
                batch[name] += time.process_time() - start
        _index_tail(logs[DEFERRED], watermark)
        conn = logs[DEFERRED].store._conn  # type: ignore[attr-defined]
        indexed = conn.execute("SELECT count(*) FROM audit_text_docsize").fetchone()[0]
        stored = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        assert indexed == stored, f"the deferred indexer left {stored - indexed} rows out"
        idle_merge: dict[str, float] = {}
        for name, log in logs.items():
            conn = log.store._conn  # type: ignore[attr-defined]
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_text_insert'").fetchone():
                start = time.process_time()
                conn.execute("INSERT INTO audit_text (audit_text, rank) VALUES ('merge', 500)")
                idle_merge[name] = time.process_time() - start
        floor = "no text index (floor)"
        n_single = args.rounds * args.singles
        n_batch = args.rounds * args.batches * BATCH
        print(
            "\n| variant | single: us/row | its FTS part | batch 1,000: us/row | its FTS part "
            "| idle merge 500 pages ms |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for name in VARIANTS:
            s, b = single[name] / n_single * 1e6, batch[name] / n_batch * 1e6
            fs, fb = s - single[floor] / n_single * 1e6, b - batch[floor] / n_batch * 1e6
            merge = f"{idle_merge[name] * 1000:.0f}" if name in idle_merge else "-"
            print(f"| {name} | {s:.1f} | {fs:+.1f} | {b:.1f} | {fb:+.1f} | {merge} |")
        for log in logs.values():
            log.store.close()
        durable(Path(tmp), rnd, args.rounds, args.durable)
    return 0


def durable(tmp: Path, rnd: random.Random, rounds: int, per_round: int) -> None:
    """Wall time of durable single publishes (``synchronous=FULL``, the default): the index's
    CPU beside the fsync each commit waits for."""
    logs: dict[str, AuditLog] = {}
    for name in ("text index (shipped: trigger, automerge 4)", "no text index (floor)"):
        store = SQLiteStore(tmp / f"durable-{len(logs)}.db", tree=False)
        setup = VARIANTS[name]
        if setup is not None:
            setup(store._conn)
        logs[name] = AuditLog(store, workspace="w")
        logs[name].publish_many(_events(rnd, 5_000, 0))
    wall = dict.fromkeys(logs, 0.0)
    for _ in range(rounds):
        for name, log in logs.items():
            events = _events(rnd, per_round, 0)
            start = time.perf_counter()
            for event in events:
                log.publish_audit_log(event)
            wall[name] += time.perf_counter() - start
    print("\n| durable single publish (synchronous=FULL) | publishes/s | ms each |")
    print("|---|---:|---:|")
    for name, seconds in wall.items():
        n = rounds * per_round
        print(f"| {name} | {n / seconds:,.0f} | {seconds / n * 1000:.2f} |")
    for log in logs.values():
        log.store.close()


if __name__ == "__main__":
    sys.exit(main())
