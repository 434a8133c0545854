"""What the tree's pages cost a single durable publish (issue 14): tree off, tree on (its
leaves in one B-tree, one page a commit), and tree on with the leaves laid out as before
2026-12-02 (keyed by position, with a ``(workspace, idx)`` index: two B-trees, two pages).

All three in one loop, turn by turn (each round starting with the next), same durability
(WAL, synchronous=FULL), p50 wall time; then, apart, the WAL pages each side writes per
commit (the WAL's growth / 4,096 over 200 more publishes, checkpoints off).

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

# The leaves as 0.2.0 development builds laid them out until 2026-12-02: keyed by position,
# with a unique (workspace, idx) index (two B-trees, two pages a commit). The tests build a
# file of that layout with it too (tests/test_tree_write.py).
TWO_BTREES = """
CREATE TABLE merkle_leaf_two (position INTEGER PRIMARY KEY, workspace TEXT NOT NULL,
    idx INTEGER NOT NULL, hash BLOB NOT NULL);
INSERT INTO merkle_leaf_two SELECT position, workspace, idx, hash FROM merkle_leaf;
DROP TABLE merkle_leaf;
ALTER TABLE merkle_leaf_two RENAME TO merkle_leaf;
CREATE UNIQUE INDEX merkle_leaf_idx ON merkle_leaf (workspace, idx);
"""


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
            "tree on, two leaf B-trees (before)": AuditLog(f"sqlite:///{d / 'two.db'}"),
        }
        for log in sides.values():
            log.publish_many([_event(i) for i in range(2_000)])  # tables, caches, frontier
        two = sides["tree on, two leaf B-trees (before)"].store._conn  # type: ignore[attr-defined]
        two.executescript(TWO_BTREES)  # under the open writer: it inserts by column name
        times: dict[str, list[float]] = {name: [] for name in sides}
        order = list(sides.items())
        for i in range(args.singles):
            # Each round starts with the next side: the one that publishes first after the
            # others' fsyncs pays ~1% more (bench.merkle's A/A run), so no side always does.
            for name, log in order[i % 3 :] + order[: i % 3]:
                start = time.perf_counter()
                log.publish_audit_log(_event(2_000 + i))
                times[name].append(time.perf_counter() - start)
        # Pages, apart from the timing (a WAL that only grows makes every fsync dearer): the
        # WAL's growth over 200 more publishes, checkpoints off.
        files = {"tree off": "off.db", "tree on": "on.db", "tree on, two leaf B-trees (before)": "two.db"}
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
