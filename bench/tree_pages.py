"""What the tree's pages cost a single durable publish (issue 14), as a what-if beside the
real thing: tree off, tree on, and tree on with the leaf table's ``(workspace, idx)`` index
dropped (one B-tree page fewer per commit: what keeping the leaves in one B-tree would buy at
most; proofs and verify would need another path to their leaves, so it is not shipped).

All three in one loop, turn by turn, same durability (WAL, synchronous=FULL), p50 wall time;
then, apart, the WAL pages each side writes per commit (the WAL's growth / 4,096 over 200 more
publishes, checkpoints off).

    .venv/bin/python -m bench.tree_pages [--singles 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from auditbird import AuditLog

from .machine import describe


def _event(i: int) -> dict[str, object]:
    return {
        "id": f"monitor:{i % 50}",
        "action": "monitor.down",
        "metadata": {"region": "ams", "statusCode": 500, "n": i},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--singles", type=int, default=1_000)
    args = parser.parse_args()
    print(describe())
    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        sides = {
            "tree off": AuditLog(f"sqlite:///{d / 'off.db'}?tree=off"),
            "tree on": AuditLog(f"sqlite:///{d / 'on.db'}"),
            "tree on, one leaf B-tree (what-if)": AuditLog(f"sqlite:///{d / 'one.db'}"),
        }
        for log in sides.values():
            log.publish_many([_event(i) for i in range(2_000)])  # tables, caches, frontier
        one = sides["tree on, one leaf B-tree (what-if)"].store._conn  # type: ignore[attr-defined]
        one.execute("DROP INDEX merkle_leaf_idx")  # the writer's appends never read it
        times: dict[str, list[float]] = {name: [] for name in sides}
        for i in range(args.singles):
            for name, log in sides.items():
                start = time.perf_counter()
                log.publish_audit_log(_event(2_000 + i))
                times[name].append(time.perf_counter() - start)
        # Pages, apart from the timing (a WAL that only grows makes every fsync dearer): the
        # WAL's growth over 200 more publishes, checkpoints off.
        files = {"tree off": "off.db", "tree on": "on.db", "tree on, one leaf B-tree (what-if)": "one.db"}
        for log in sides.values():
            conn = log.store._conn  # type: ignore[attr-defined]
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            for i in range(200):
                log.publish_audit_log(_event(10_000_000 + i))
        pages = {name: os.path.getsize(d / f"{files[name]}-wal") / 4096 / 200 for name in sides}
        for log in sides.values():
            log.close()
    base = statistics.median(times["tree off"])
    for name in sides:
        p50 = statistics.median(times[name])
        print(
            f"single durable publish p50, {name:36}: {p50 * 1e3:.3f} ms, off/this {base / p50:.3f}x, "
            f"WAL pages per commit {pages[name]:.2f}"
        )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
