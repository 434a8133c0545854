"""The tree's write cost in numbers that hold on a shared machine (issue 14): CPU time per
publish with ``synchronous=OFF`` (no fsync wait), and dirty pages per commit (the WAL's growth
per commit / page size), tree on vs off, interleaved.

    .venv/bin/python -m bench.tree_write [--singles 4000] [--batches 40]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from auditbird import AuditLog


def _event(i: int) -> dict[str, object]:
    return {"id": f"monitor:{i % 50}", "action": "monitor.down", "metadata": {"region": "ams", "n": i}}


def _wal_pages(db: Path) -> float:
    wal = Path(f"{db}-wal")
    return (wal.stat().st_size if wal.exists() else 0) / 4096


def _measure(d: Path, size: int, rounds: int, block: int) -> dict[str, tuple[float, float]]:
    """CPU seconds per publish (the least over blocks of ``block`` publishes, the sides taking
    turns block by block: other processes only ever add to it) and WAL pages per commit, tree
    on and off."""
    logs = {
        "on": AuditLog(f"sqlite:///{d / f'{size}-on.db'}?synchronous=OFF"),
        "off": AuditLog(f"sqlite:///{d / f'{size}-off.db'}?synchronous=OFF&tree=off"),
    }
    for log in logs.values():  # warm up: tables, caches, the tree's frontier
        log.publish_many([_event(i) for i in range(2_000)])
        conn = log.store._conn  # type: ignore[attr-defined]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # the WAL only grows: its size counts pages
    cpu: dict[str, list[float]] = {name: [] for name in logs}
    n = 0
    for _ in range(rounds // block):
        for name, log in logs.items():
            batches = [[_event(n + b * size + i) for i in range(size)] for b in range(block)]
            start = time.process_time()
            for batch in batches:
                if size == 1:
                    log.publish_audit_log(batch[0])
                else:
                    log.publish_many(batch)
            cpu[name].append((time.process_time() - start) / block)
        n += block * size
    commits = rounds // block * block
    pages = {name: _wal_pages(d / f"{size}-{name}.db") / commits for name in logs}
    for log in logs.values():
        log.close()
    return {name: (min(cpu[name]), pages[name]) for name in logs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--singles", type=int, default=4_000)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        for size, rounds, block in ((1, args.singles, 100), (1_000, args.batches, 2)):
            got = _measure(Path(tmp), size, rounds, block)
            (on_cpu, on_pages), (off_cpu, off_pages) = got["on"], got["off"]
            print(
                f"publish of {size:>5}: CPU (best block) tree on {on_cpu * 1e6:8.1f} us, "
                f"off {off_cpu * 1e6:8.1f} us "
                f"(+{(on_cpu - off_cpu) * 1e6:.1f} us, on/off {off_cpu / on_cpu:.2f}x); "
                f"WAL pages per commit on {on_pages:.2f}, off {off_pages:.2f}"
            )


if __name__ == "__main__":
    main()
