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


def _cpu_per_event(rounds: int, size: int, step: Callable[[list[dict[str, Any]]], object]) -> float:
    """Median CPU µs per event of ``step`` over ``rounds`` fresh batches of ``size``."""
    samples = []
    for _ in range(rounds):
        items = _items(size)
        start = time.process_time()
        step(items)
        samples.append((time.process_time() - start) / size * 1e6)
    return median(samples)


def _wall_per_event(rounds: int, size: int, step: Callable[[list[dict[str, Any]]], object]) -> float:
    samples = []
    for _ in range(rounds):
        items = _items(size)
        start = time.perf_counter()
        step(items)
        samples.append((time.perf_counter() - start) / size * 1e6)
    return median(samples)


def _log(d: Path, name: str, options: str, *, text_index: bool = True) -> AuditLog:
    path = d / f"{name}.db"
    log = AuditLog(f"sqlite:///{path}?{options}")
    log.list(limit=1)  # open and migrate now, not inside the first timed round
    if not text_index:
        with sqlite3.connect(path) as conn:  # the same schema without the trigger that feeds it
            conn.execute("DROP TRIGGER IF EXISTS audit_text_insert")
    return log


def measure(d: Path, size: int, rounds: int) -> dict[str, float]:
    """CPU µs per event of each stage (and the fsync's wall µs per event) for one batch size."""
    prep = _log(d, f"prep-{size}", "synchronous=OFF&tree=off")
    bare = _log(d, f"bare-{size}", "synchronous=OFF&tree=off", text_index=False)
    texted = _log(d, f"text-{size}", "synchronous=OFF&tree=off")
    treed = _log(d, f"tree-{size}", "synchronous=OFF")
    durable = _log(d, f"durable-{size}", "")
    loose = _log(d, f"loose-{size}", "synchronous=OFF")

    def body(items: list[dict[str, Any]]) -> bytes:
        return b"\n".join(json.dumps(i).encode() for i in items)

    def appended(log: AuditLog) -> Callable[[list[dict[str, Any]]], object]:
        def step(items: list[dict[str, Any]]) -> object:
            rows = prep._prepare_many(items)[1]  # prepared outside the clock: the store alone
            start = time.process_time()
            log.store.append(rows)
            step.cpu += time.process_time() - start  # type: ignore[attr-defined]
            return None

        step.cpu = 0.0  # type: ignore[attr-defined]
        return step

    figures: dict[str, float] = {}
    bodies = [body(_items(size)) for _ in range(rounds)]
    samples = []
    for b in bodies:
        start = time.process_time()
        parse_events(b, "application/x-ndjson", max(size, 1))
        samples.append((time.process_time() - start) / size * 1e6)
    figures["parse (NDJSON)"] = median(samples)
    figures["validate + encode"] = _cpu_per_event(rounds, size, prep._prepare_many)
    # Each store stage in turn, interleaved round by round so the load is shared fairly.
    steps = {"insert": appended(bare), "+ text index": appended(texted), "+ Merkle tree": appended(treed)}
    for _ in range(rounds):
        for step in steps.values():
            step(_items(size))
    cpu = {name: step.cpu / (rounds * size) * 1e6 for name, step in steps.items()}  # type: ignore[attr-defined]
    figures["insert"] = cpu["insert"]
    figures["+ text index"] = cpu["+ text index"] - cpu["insert"]
    figures["+ Merkle tree"] = cpu["+ Merkle tree"] - cpu["+ text index"]

    def publish(log: AuditLog) -> Callable[[list[dict[str, Any]]], object]:
        return log.publish_audit_log if size == 1 else log.publish_many  # type: ignore[return-value]

    figures["publish, all of it (CPU)"] = _cpu_per_event(
        rounds, size, lambda items: publish(loose)(items[0] if size == 1 else items)
    )
    full = _wall_per_event(rounds, size, lambda items: publish(durable)(items[0] if size == 1 else items))
    off = _wall_per_event(rounds, size, lambda items: publish(loose)(items[0] if size == 1 else items))
    figures["durable commit (wall: FULL - OFF)"] = full - off
    figures["publish, durable (wall)"] = full
    for log in (prep, bare, texted, treed, durable, loose):
        log.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000, help="events per batch")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory(prefix="auditbird-breakdown-") as tmp:
        batch = measure(Path(tmp), args.size, args.rounds)
        single = measure(Path(tmp), 1, args.rounds * 20)
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
