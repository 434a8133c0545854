"""Issue 14's benchmarks: the Merkle tree's cost on publish, proof latency, verify throughput.

One run, side by side, the same durability (WAL, synchronous=FULL) on both sides:
- a single durable publish and a batch of 1,000 with the tree on vs off (``?tree=off``);
- an inclusion proof (``auditbird.provable.prove``) p50 on a large log (``--events``);
- ``verify`` of the exported events (offline, against a signed checkpoint), events/s.

    .venv/bin/python -m bench.merkle [--events 1000000] [--singles 300] [--batches 10]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from auditbird import AuditLog
from auditbird.provable import prove
from auditbird.provable.checkpoint import open_checkpoint, sign_checkpoint, signer_for
from auditbird.provable.verify import verify_export, write_export

from .machine import describe, median


def _event(i: int) -> dict[str, object]:
    return {
        "id": f"monitor:{i % 50}",
        "action": "monitor.down",
        "metadata": {"region": "ams", "statusCode": 500, "n": i},
    }


def _side_by_side(d: Path, name: str, rounds: int, size: int) -> tuple[float, float]:
    """p50 seconds of a publish of ``size`` events (1: a single publish), tree on vs off,
    interleaved so both sides see the same machine load."""
    on, off = (
        AuditLog(f"sqlite:///{d / (name + '-on.db')}"),
        AuditLog(f"sqlite:///{d / (name + '-off.db')}?tree=off"),
    )
    times: dict[int, list[float]] = {0: [], 1: []}
    for r in range(rounds):
        for side, log in enumerate((on, off)):
            batch = [_event(r * size + i) for i in range(size)]
            start = time.perf_counter()
            if size == 1:
                log.publish_audit_log(batch[0])
            else:
                log.publish_many(batch)
            times[side].append(time.perf_counter() - start)
    on.close()
    off.close()
    return median(times[0]), median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--singles", type=int, default=300)
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        on, off = _side_by_side(d, "single", args.singles, 1)
        print(
            f"single publish p50: tree on {on * 1e3:.2f} ms, off {off * 1e3:.2f} ms: on/off {off / on:.2f}x"
        )
        on, off = _side_by_side(d, "batch", args.batches, 1000)
        print(
            f"batch of 1,000 p50: tree on {on * 1e3:.1f} ms, off {off * 1e3:.1f} ms: on/off {off / on:.2f}x"
        )

        log = AuditLog(f"sqlite:///{d / 'big.db'}")
        start = time.perf_counter()
        uids: list[str] = []
        for b in range(0, args.events, 10_000):
            events = log.publish_many([_event(i) for i in range(b, min(b + 10_000, args.events))])
            uids.extend(random.sample([e.uid for e in events], 10))
        build = time.perf_counter() - start
        print(
            f"built a {args.events:,}-event log, tree on: {build:.1f} s ({args.events / build:,.0f} events/s)"
        )
        times = []
        for uid in uids[:1000]:
            start = time.perf_counter()
            prove(log, uid).verify()
            times.append(time.perf_counter() - start)
        print(f"inclusion proof + verify p50 on {args.events:,} events: {median(times) * 1e3:.3f} ms")

        text = sign_checkpoint(log)
        checkpoint = open_checkpoint(text, signer_for(log).verifier_key())
        path = d / "export.ndjson"
        with path.open("wb") as out:
            write_export(log, checkpoint.size, out)  # what `auditbird checkpoint --export` writes
        with path.open("rb") as f:  # as `auditbird verify --export` reads it
            start, cpu = time.perf_counter(), time.process_time()
            report = verify_export(f, checkpoint)
            took, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert report.ok, report.message()
        print(
            f"verify of {report.events:,} exported events: {took:.1f} s ({report.events / took:,.0f}/s; "
            f"CPU time {cpu:.1f} s: {report.events / cpu:,.0f}/s of one core)"
        )
        log.close()


if __name__ == "__main__":
    main()
