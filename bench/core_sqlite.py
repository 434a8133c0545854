"""Issue 2's benchmarks: the SQLite store against the raw sqlite3 floor and `eventsourcing`.

One run, side by side, the same durability (WAL, synchronous=FULL) everywhere:
- single durable publish: AuditLog.publish_audit_log vs one autocommit INSERT vs eventsourcing's save
- batches of 1,000: publish_many vs executemany vs eventsourcing saving 1,000 pending events
- get_audit_log on a 1,000,000-event file: p50 vs the same indexed SELECT, raw

    .venv/bin/python -m bench.core_sqlite [--events 1000000] [--single 3000] [--batches 50]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

import auditbird.catalog.openstatus  # noqa: F401  (typed metadata, as an application would)
from auditbird import AuditLog
from auditbird.codec import encode
from auditbird.event import Event
from auditbird.query import Query
from auditbird.stores.sqlite import MIGRATIONS, SQLiteStore, _statements, build_select

from .machine import describe, median, pct


def seed_event(i: int, stream: str | None = None) -> dict[str, Any]:
    return {
        "id": stream or f"monitor:{i % 1000}",
        "action": "monitor.down",
        "actor": {"id": "42", "name": "checker"},
        "targets": [{"id": str(i % 1000), "type": "monitor"}],
        "metadata": {"region": "gru", "statusCode": 400, "message": "timeout"},
    }


def raw_connection(path: Path) -> sqlite3.Connection:
    """The floor: the same tables, indexes and trigger, no auditbird code in the write path."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    for script in MIGRATIONS:  # every migration: the same indexes the store maintains
        for statement in _statements(script):
            conn.execute(statement)
    return conn


INSERT = (
    "INSERT INTO audit_log (position, uid, workspace, id, action, actor, targets, metadata, timestamp, "
    "version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_TARGET = "INSERT INTO audit_target VALUES (?, ?, ?, ?, ?, ?)"


def rows_for(n: int, offset: int = 0) -> list[tuple[Any, ...]]:
    """Prepared rows with their positions (offset + 1 ...), as the floor writes them."""
    return [(offset + i + 1, *encode(Event.model_validate(seed_event(offset + i)))[:9]) for i in range(n)]


def target_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The floor's target rows, precomputed (the one target of each seed event)."""
    return [(r[0], r[2], "monitor", str((r[0] - 1) % 1000), r[8], r[1]) for r in rows]


# -- eventsourcing peer -----------------------------------------------------------------------


class Monitor(Aggregate):
    def __init__(self) -> None:
        self.downs = 0

    @event("Down")
    def down(self, region: str, statusCode: int, message: str) -> None:  # noqa: N803
        self.downs += 1


def es_app(path: Path) -> Any:
    """An eventsourcing Application on its SQLite store (WAL, default synchronous=FULL)."""
    os.environ["PERSISTENCE_MODULE"] = "eventsourcing.sqlite"
    os.environ["SQLITE_DBNAME"] = str(path)
    return Application[Any]()


def settle_heap() -> None:
    """Freeze the prepared inputs out of the cyclic GC's sight: otherwise every full
    collection during a timed loop rescans the benchmark's own setup data, and charges it to
    whichever contender allocates (ours, eventsourcing), never to the raw floor."""
    gc.collect()
    gc.freeze()


ROUNDS = 10  # contenders alternate in rounds, so a noisy neighbour slows all three alike


def bench_single(tmp: Path, n: int) -> dict[str, float]:
    """Sequential single publishes, each its own durable transaction."""
    per_round = n // ROUNDS
    spent = {"raw": 0.0, "auditbird": 0.0, "eventsourcing": 0.0}
    conn = raw_connection(tmp / "raw_single.db")
    rows = rows_for(n)
    targets = target_rows(rows)
    log = AuditLog(f"sqlite:///{tmp / 'ab_single.db'}")
    events = [seed_event(i) for i in range(n)]
    app = es_app(tmp / "es_single.db")
    monitor = Monitor()
    app.save(monitor)
    settle_heap()
    for r in range(ROUNDS):
        part = slice(r * per_round, (r + 1) * per_round)
        t = time.perf_counter()
        for row, target in zip(rows[part], targets[part], strict=True):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(INSERT, row)
            conn.execute(INSERT_TARGET, target)
            conn.execute("COMMIT")
        spent["raw"] += time.perf_counter() - t
        t = time.perf_counter()
        for e in events[part]:
            log.publish_audit_log(e)
        spent["auditbird"] += time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(per_round):
            monitor.down(region="gru", statusCode=400, message="timeout")
            app.save(monitor)
        spent["eventsourcing"] += time.perf_counter() - t
    conn.close()
    log.close()
    app.close()
    return {k: per_round * ROUNDS / v for k, v in spent.items()}


def bench_batches(tmp: Path, batches: int, size: int = 1_000) -> dict[str, float]:
    """Batches of 1,000 events, one durable transaction each."""
    spent = {"raw": 0.0, "auditbird": 0.0, "eventsourcing": 0.0}
    conn = raw_connection(tmp / "raw_batch.db")
    prepared = [rows_for(size, b * size) for b in range(batches)]
    prepared_targets = [target_rows(rows) for rows in prepared]
    log = AuditLog(f"sqlite:///{tmp / 'ab_batch.db'}")
    inputs = [[seed_event(b * size + i) for i in range(size)] for b in range(batches)]
    app = es_app(tmp / "es_batch.db")
    settle_heap()
    for b in range(batches):
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, prepared[b])
        conn.executemany(INSERT_TARGET, prepared_targets[b])
        conn.execute("COMMIT")
        spent["raw"] += time.perf_counter() - t
        t = time.perf_counter()
        log.publish_many(inputs[b])
        spent["auditbird"] += time.perf_counter() - t
        t = time.perf_counter()
        monitor = Monitor()
        for _ in range(size - 1):
            monitor.down(region="gru", statusCode=400, message="timeout")
        app.save(monitor)
        spent["eventsourcing"] += time.perf_counter() - t
    conn.close()
    log.close()
    app.close()
    return {k: batches * size / v for k, v in spent.items()}


def build_big_file(path: Path, n: int, streams: int) -> None:
    conn = raw_connection(path)
    conn.execute("PRAGMA synchronous = OFF")  # building the fixture only
    store_meta = "INSERT OR REPLACE INTO auditbird_meta (key, value) VALUES ('schema_version', ?)"
    conn.execute("CREATE TABLE IF NOT EXISTS auditbird_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(store_meta, (str(len(MIGRATIONS)),))
    template = rows_for(1)[0]
    base_ts = 1_700_000_000_000
    chunk = 50_000
    for start in range(0, n, chunk):
        rows, targets = [], []
        for i in range(start, min(n, start + chunk)):
            stream = f"monitor:{i % streams}"
            uid = f"{i:032x}"
            rows.append(
                (
                    i + 1,
                    uid,
                    "",
                    stream,
                    template[4],
                    template[5],
                    f'[{{"id":"{i % streams}","type":"monitor"}}]',
                    template[7],
                    base_ts + i,
                    1,
                )
            )
            targets.append((i + 1, "", "monitor", str(i % streams), base_ts + i, uid))
        conn.execute("BEGIN")
        conn.executemany(INSERT, rows)
        conn.executemany(INSERT_TARGET, targets)
        conn.execute("COMMIT")
    conn.close()


def bench_read(tmp: Path, n: int, streams: int, samples: int) -> dict[str, float]:
    path = tmp / "big.db"
    t = time.perf_counter()
    build_big_file(path, n, streams)
    build_s = time.perf_counter() - t
    rng = random.Random(7)
    picks = [f"monitor:{rng.randrange(streams)}" for _ in range(samples)]
    raw = sqlite3.connect(path)
    raw_times, ab_times = [], []
    with AuditLog(SQLiteStore(path)) as log:
        for stream in picks:  # interleaved, so both see the same cache state
            sql, params = build_select(Query(event_id=stream, limit=None))
            t = time.perf_counter()
            raw.execute(sql, params).fetchall()
            raw_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            events = log.get_audit_log(event_id=stream)
            ab_times.append(time.perf_counter() - t)
            assert len(events) == n // streams
    raw.close()
    return {
        "raw_p50_ms": median(raw_times) * 1000,
        "auditbird_p50_ms": median(ab_times) * 1000,
        "raw_p99_ms": pct(raw_times, 0.99) * 1000,
        "auditbird_p99_ms": pct(ab_times, 0.99) * 1000,
        "build_s": build_s,
        "per_stream": n // streams,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--streams", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=3_000)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--samples", type=int, default=500)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="auditbird-bench-"))
    try:
        print(describe())
        single = bench_single(tmp, args.single)
        print(f"single publish/s: {single}")
        print(
            f"  auditbird/raw = {single['auditbird'] / single['raw']:.2f}  "
            f"auditbird/eventsourcing = {single['auditbird'] / single['eventsourcing']:.2f}"
        )
        batch = bench_batches(tmp, args.batches)
        print(f"batched events/s: {batch}")
        print(
            f"  auditbird/raw = {batch['auditbird'] / batch['raw']:.2f}  "
            f"auditbird/eventsourcing = {batch['auditbird'] / batch['eventsourcing']:.2f}"
        )
        read = bench_read(tmp, args.events, args.streams, args.samples)
        print(f"get_audit_log on {args.events:,} events: {read}")
        print(f"  p50 auditbird/raw = {read['auditbird_p50_ms'] / read['raw_p50_ms']:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
