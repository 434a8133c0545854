"""Issue 14's benchmarks: the Merkle tree's cost on publish, proof latency, verify throughput.

One run, side by side, the same durability (WAL, synchronous=FULL) on both sides:
- a single durable publish and a batch of 1,000 with the tree on vs off (``?tree=off``),
  the side that goes first alternating round by round;
- ``order``: an A/A run (two tree-off logs, the same one first every round): what going first
  costs on this machine, the bias the alternation cancels;
- an inclusion proof (``auditbird.provable.prove``) p50 on a large log (``--events``);
- ``verify`` of the exported events (offline, against a signed checkpoint), events/s: the
  fast check ``verify_export`` runs on an untouched export, then the exact check alone (every
  line re-canonicalised: what an export spelled otherwise costs), one after the other.

    .venv/bin/python -m bench.merkle [--events 1000000] [--singles 300] [--batches 30]
                                     [--parts publish,order,proof,verify]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from auditbird import AuditLog
from auditbird.provable import prove
from auditbird.provable.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint, signer_for
from auditbird.provable.export import _verify_exact
from auditbird.provable.report import VerifyReport
from auditbird.provable.verify import verify_export, write_export

from .machine import describe, median


def _event(i: int) -> dict[str, object]:
    return {
        "id": f"monitor:{i % 50}",
        "action": "monitor.down",
        "metadata": {"region": "ams", "statusCode": 500, "n": i},
    }


def _side_by_side(
    d: Path,
    name: str,
    rounds: int,
    size: int,
    *,
    tree: tuple[bool, bool] = (True, False),
    alternate: bool = True,
) -> tuple[float, float]:
    """p50 seconds of a publish of ``size`` events (1: a single publish), tree on vs off,
    interleaved so both sides see the same machine load, and (``alternate``) each round the
    other side first: on this machine whichever publishes first after the other's fsync pays
    ~1% more (:func:`_order_bias`), which a fixed order would charge to one side."""
    on, off = (
        AuditLog(f"sqlite:///{d / (name + '-on.db')}" + ("" if tree[0] else "?tree=off")),
        AuditLog(f"sqlite:///{d / (name + '-off.db')}" + ("" if tree[1] else "?tree=off")),
    )
    times: dict[int, list[float]] = {0: [], 1: []}
    for r in range(rounds):
        for side, log in ((1, off), (0, on)) if alternate and r % 2 else ((0, on), (1, off)):
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


def _timed_verify(
    check: Callable[[BinaryIO, Checkpoint], VerifyReport], path: Path, checkpoint: Checkpoint
) -> tuple[VerifyReport, float, float]:
    """``check`` of the export at ``path`` (opened as `auditbird verify --export` opens it):
    its report, wall seconds, CPU seconds of this process."""
    with path.open("rb") as f:
        start, cpu = time.perf_counter(), time.process_time()
        report = check(f, checkpoint)
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert report.ok, report.message()
    return report, took, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--singles", type=int, default=300)
    parser.add_argument("--batches", type=int, default=30)  # a p50 of 10 moved by ±0.03x run to run
    parser.add_argument(
        "--parts",
        default="publish,order,proof,verify",
        help="which parts to run, comma-separated (proof and verify build the large log)",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if "publish" in parts:
            on, off = _side_by_side(d, "single", args.singles, 1)
            print(
                f"single publish p50: tree on {on * 1e3:.2f} ms, off {off * 1e3:.2f} ms: "
                f"on/off {off / on:.2f}x"
            )
            on, off = _side_by_side(d, "batch", args.batches, 1000)
            print(
                f"batch of 1,000 p50: tree on {on * 1e3:.1f} ms, off {off * 1e3:.1f} ms: "
                f"on/off {off / on:.2f}x"
            )
        if "order" in parts:
            _order_bias(d, args.singles)
        if parts & {"proof", "verify"}:
            _large(d, args.events, parts)


def _order_bias(d: Path, rounds: int) -> None:
    """An A/A run: two tree-off logs, always in the same order. Their ratio is what the order
    alone costs the side that goes first (why :func:`_side_by_side` alternates it)."""
    first, second = _side_by_side(d, "order", rounds * 2, 1, tree=(False, False), alternate=False)
    print(
        f"order alone (A/A, both tree off, same order every round): first {first * 1e3:.3f} ms, "
        f"second {second * 1e3:.3f} ms: second/first {second / first:.3f}x"
    )


def _large(d: Path, size: int, parts: set[str]) -> None:
    """The parts that need a large log: proof latency, verify of its export."""
    log = AuditLog(f"sqlite:///{d / 'big.db'}")
    start = time.perf_counter()
    uids: list[str] = []
    for b in range(0, size, 10_000):
        events = log.publish_many([_event(i) for i in range(b, min(b + 10_000, size))])
        uids.extend(random.sample([e.uid for e in events], min(10, len(events))))
    build = time.perf_counter() - start
    print(f"built a {size:,}-event log, tree on: {build:.1f} s ({size / build:,.0f} events/s)")
    if "proof" in parts:
        times = []
        for uid in uids[:1000]:
            start = time.perf_counter()
            prove(log, uid).verify()
            times.append(time.perf_counter() - start)
        print(f"inclusion proof + verify p50 on {size:,} events: {median(times) * 1e3:.3f} ms")
    if "verify" in parts:
        text = sign_checkpoint(log)
        checkpoint = open_checkpoint(text, signer_for(log).verifier_key())
        path = d / "export.ndjson"
        with path.open("wb") as out:
            write_export(log, checkpoint.size, out)  # what `auditbird checkpoint --export` writes
        load = _loadavg()
        report, took, cpu = _timed_verify(verify_export, path, checkpoint)
        n = report.events
        print(
            f"verify of {n:,} exported events: {took:.1f} s ({n / took:,.0f}/s; "
            f"CPU time {cpu:.1f} s: {n / cpu:,.0f}/s of one core){load}"
        )
        load = _loadavg()
        _, exact, exact_cpu = _timed_verify(_verify_exact, path, checkpoint)
        print(
            f"  the exact check alone (every line re-canonicalised, as for an export spelled "
            f"otherwise): {exact:.1f} s ({n / exact:,.0f}/s; CPU {n / exact_cpu:,.0f}/s): "
            f"fast/exact {exact_cpu / cpu:.2f}x CPU{load}"
        )
    log.close()


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return f" [load {' '.join(f.read().split()[:3])}]"
    except OSError:
        return ""


if __name__ == "__main__":
    main()
