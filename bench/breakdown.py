"""Where a publish spends its time, stage by stage: the measured breakdown issue 15 asks for
next to every goal it misses.

CPU per event (``time.process_time``, so it holds on a shared machine where wall time does
not), for a batch of ``--size`` events and for a single publish, on a SQLite file with
``synchronous=OFF`` so the disk is out of the CPU figures; then the wall time the durable
commit adds (``synchronous=FULL`` against OFF), which is the disk's share.

- parse: the service's NDJSON parser over the batch's body (``service.ingest.parse_events``)
- validate + encode: the facade's preparation of the rows (validation per action, encoding,
  sealing personal fields), as ``publish_many`` runs it
- insert: ``store.append`` of the prepared rows, tree off, without the text index's trigger
- text index: the same with the trigger (the difference)
- Merkle tree: the same with the tree on (the difference)
- fsync (wall): a durable ``publish_many`` against the same with ``synchronous=OFF``

Every stage appends fresh events (new uids), so nothing is skipped as a re-published uid.

    .venv/bin/python -m bench.breakdown [--size 1000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any

import auditbird.catalog.openstatus  # noqa: F401  (typed metadata, as an application would)
from auditbird import AuditLog
from auditbird.service.ingest import parse_events

from .core_sqlite import seed_event
from .machine import describe, median

_serial = count()


def _items(size: int) -> list[dict[str, Any]]:
    return [seed_event(next(_serial)) for _ in range(size)]


def _log(d: Path, name: str, options: str, *, text_index: bool = True) -> AuditLog:
    path = d / f"{name}.db"
    log = AuditLog(f"sqlite:///{path}?{options}")
    log.list(limit=1)  # open and migrate now, not inside the first timed round
    if not text_index:
        with sqlite3.connect(path) as conn:  # the same schema without the trigger that feeds it
            conn.execute("DROP TRIGGER IF EXISTS audit_text_insert")
    return log


def measure(d: Path, size: int, rounds: int) -> dict[str, float]:
    """CPU µs per event of each stage (and the fsync's wall µs per event) for one batch size:
    every stage runs once per round, the rounds interleave the stages so each sees the same
    machine, and each figure is the median over rounds."""
    prep = _log(d, f"prep-{size}", "synchronous=OFF&tree=off")
    stores = {
        "insert": _log(d, f"bare-{size}", "synchronous=OFF&tree=off", text_index=False),
        "+ text index": _log(d, f"text-{size}", "synchronous=OFF&tree=off"),
        "+ Merkle tree": _log(d, f"tree-{size}", "synchronous=OFF"),
    }
    durable, loose = _log(d, f"durable-{size}", ""), _log(d, f"loose-{size}", "synchronous=OFF")
    prepare = (lambda items: prep._prepare_one(items[0])) if size == 1 else prep._prepare_many

    def publish(log: AuditLog, items: list[dict[str, Any]]) -> object:
        return log.publish_audit_log(items[0]) if size == 1 else log.publish_many(items)

    samples: dict[str, list[float]] = {}

    def timed(name: str, clock: Callable[[], float], step: Callable[..., object], *args: Any) -> None:
        start = clock()
        step(*args)
        samples.setdefault(name, []).append((clock() - start) / size * 1e6)

    for _ in range(rounds):
        items = _items(size)
        body = b"\n".join(json.dumps(i).encode() for i in items)
        timed("parse (NDJSON)", time.process_time, parse_events, body, "application/x-ndjson", size)
        timed("validate + encode", time.process_time, prepare, _items(size))
        for name, log in stores.items():
            rows = prep._prepare_many(_items(size))[1]  # prepared outside the clock: the store alone
            timed(name, time.process_time, log.store.append, rows)
        timed("publish, all of it (CPU)", time.process_time, publish, loose, _items(size))
        timed("publish, durable (wall)", time.perf_counter, publish, durable, _items(size))
        timed("publish, unsynced (wall)", time.perf_counter, publish, loose, _items(size))
    figures = {name: median(values) for name, values in samples.items()}
    # The store stages as differences: each store adds one thing to the one before it.
    figures["+ Merkle tree"] -= figures["+ text index"]
    figures["+ text index"] -= figures["insert"]
    figures["durable commit (wall: FULL - OFF)"] = median(
        [
            f - o
            for f, o in zip(
                samples["publish, durable (wall)"], samples["publish, unsynced (wall)"], strict=True
            )
        ]
    )
    del figures["publish, unsynced (wall)"]
    for log in (prep, *stores.values(), durable, loose):
        log.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000, help="events per batch")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory(prefix="auditbird-breakdown-") as tmp:
        batch = measure(Path(tmp), args.size, args.rounds)
        single = measure(Path(tmp), 1, args.rounds * 10)
    print(f"{'stage (µs per event)':<36} {'batch of ' + format(args.size, ','):>14} {'single':>10}")
    for stage in batch:
        print(f"{stage:<36} {batch[stage]:>14.1f} {single[stage]:>10.1f}")
    stages = ("parse (NDJSON)", "validate + encode", "insert", "+ text index", "+ Merkle tree")
    cpu = sum(batch[s] for s in stages)
    print(
        f"service NDJSON batch, CPU of the stages above: {cpu:.1f} µs per event = at most "
        f"{1e6 / cpu:,.0f} events/s per core before HTTP, the fsync and the event loop"
    )


if __name__ == "__main__":
    main()
