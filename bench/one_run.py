"""One run of every figure an issue's benchmark asks for, back to back, for bench/RESULTS.md.

An issue's "Done when" asks for its figures "from one run with the machine and date": this runs
the modules that produce them one after the other (each in its own process, so one module's
memory and threads never colour the next), and records around each what the machine was doing
(the load average before and after: the machines are shared, and a figure taken under load is
read with its load), how long it took, and the module's own output, unedited.

    python -m bench.one_run 15 [--log FILE]     # issue 15: group commit, batches, service, text
    python -m bench.one_run 14 15               # both issues in one run
    python -m bench.one_run --list

The ratios inside each module are taken with its contenders interleaved in that module's run;
this adds the frame that makes the set of them one run.
A module's exit status is shown as it is: ``bench.text_search`` exits 1 when a shape misses its
goal, which is a figure, not a crash.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bench.machine import describe

# What each issue's benchmark section asks for, as module invocations (module, arguments).
PRESETS: dict[str, list[tuple[str, list[str]]]] = {
    "14": [
        # tree on vs off (single, batches of 1,000), proofs and verify on 1,000,000 events.
        ("bench.merkle", []),
        # what the tree adds: the leaf layouts side by side (p50, WAL pages per commit), and
        # CPU per publish without the fsync wait.
        ("bench.tree_pages", []),
        ("bench.tree_write", []),
        # each step of the tree's work on a single publish, measured where it runs (cold).
        ("bench.tree_cold", []),
    ],
    "15": [
        # 16 threads and tasks, single publish, batches of 1,000 (same-schema and lean floors,
        # eventsourcing), and get_audit_log on a 1,000,000-event file.
        ("bench.core_sqlite", ["--events", "1000000"]),
        # the service: single POSTs, JSON arrays and NDJSON batches of 1,000, return=minimal.
        ("bench.service_load", ["--seconds", "8", "--no-write"]),
        # text search and every indexed viewer filter on 1,000,000 events.
        ("bench.text_search", ["--events", "1000000", "--repeat", "20"]),
        # the measured breakdown behind every missed goal: CPU per event of each stage.
        ("bench.breakdown", []),
    ],
}


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:  # not Linux: the figure is simply not recorded
        return "unknown"


def _emit(line: str, sinks: Iterable[TextIO]) -> None:
    for sink in sinks:
        sink.write(line)
        sink.flush()


def run(issues: list[str], log: TextIO | None) -> int:
    """Run every module of ``issues`` in order; the exit code of the first that failed, or 0."""
    sinks: list[TextIO] = [sys.stdout] + ([log] if log else [])
    _emit(f"# one run for issue(s) {', '.join(issues)}\n# {describe()}\n", sinks)
    failed = 0
    for issue in issues:
        for module, args in PRESETS[issue]:
            command = [sys.executable, "-m", module, *args]
            _emit(
                f"\n## {module} {' '.join(args)} (issue {issue})\n"
                f"# started {datetime.now(UTC):%H:%M:%S} UTC, load average {_loadavg()}\n",
                sinks,
            )
            start = time.perf_counter()
            with subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ
            ) as proc:
                assert proc.stdout is not None
                for line in proc.stdout:
                    _emit(line, sinks)
            took = time.perf_counter() - start
            _emit(
                f"# ended {datetime.now(UTC):%H:%M:%S} UTC after {took:.0f} s, exit {proc.returncode}, "
                f"load average {_loadavg()}\n",
                sinks,
            )
            failed = failed or proc.returncode
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("issues", nargs="*", help=f"issue numbers: {', '.join(PRESETS)}")
    parser.add_argument("--log", type=Path, help="also write everything to this file")
    parser.add_argument("--list", action="store_true", help="print what each issue runs, run nothing")
    args = parser.parse_args()
    if args.list or not args.issues:
        for issue, modules in PRESETS.items():
            for module, module_args in modules:
                print(f"{issue}: python -m {module} {' '.join(module_args)}".rstrip())
        return
    unknown = [i for i in args.issues if i not in PRESETS]
    if unknown:
        choices = ", ".join(PRESETS)
        parser.error(f"no benchmark preset for issue(s) {', '.join(unknown)}: use one of {choices}")
    if args.log:
        with args.log.open("w") as log:
            sys.exit(run(args.issues, log))
    sys.exit(run(args.issues, None))


if __name__ == "__main__":
    main()
