"""The web viewer's speed goals on a 1,000,000-event store, checked against a measured run.

``tests/test_viewer_perf.py`` drives the viewer in Chromium and writes what it measured to
``test-output/viewer-perf.json``; it asserts behaviour only, so a slow shared CI machine does
not fail the suite. This module holds the goals (issue 5) and compares them:

    .venv/bin/python -m bench.viewer_perf            # run the browser test, then compare
    .venv/bin/python -m bench.viewer_perf --no-run   # compare the last results only

Exit status 1 when a goal is missed (for a dedicated, quiet benchmark machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "test-output" / "viewer-perf.json"


def goals(run: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(what, measured, goal) for every goal; lower is better for all of them."""
    first = run["first_render_ms"]
    filters = run["filter_ms"]
    indexed = [v for k, v in filters.items() if not k.startswith("text")]
    scroll = run["scroll"]
    return [
        ("first page, best of cold and warm (ms)", min([first["cold"], *first["warm"]]), 1_000),
        ("indexed filters, median (ms)", statistics.median(indexed), 300),
        ("indexed filters, slowest (ms)", max(indexed), 1_000),
        ("wheel scrolling, p95 frame (ms)", scroll["wheel_frame_ms_p95"], 100),
        ("longest task while loading 10k rows (ms)", scroll["loading_longest_task_ms"], 500),
        ("click 8,000 deep to detail (ms)", scroll["click_to_detail_ms"], 1_000),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="only compare the last results")
    args = parser.parse_args(argv)
    if not args.no_run:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "tests.plugins.browser",
                "tests/test_viewer_perf.py",
                "-q",
            ],
            cwd=ROOT,
            check=True,
        )
    run = json.loads(RESULTS.read_text())["million"]
    missed = 0
    print(f"{run['events']:,} events, {run['date']}, {run['machine']}")
    for what, measured, goal in goals(run):
        ok = measured <= goal
        missed += not ok
        print(f"  {'ok  ' if ok else 'MISS'} {what}: {measured:,.0f} (goal <= {goal:,})")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
