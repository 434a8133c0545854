"""``make bench``: run every benchmark module in bench/ that has a ``main()``.

Usage: python -m bench [MODULE ...]   e.g. python -m bench bench.core_sqlite
"""

from __future__ import annotations

import importlib
import sys

MODULES = [
    "bench.core_sqlite",
    "bench.tinybird_ingest",
    "bench.projection",
    "bench.noisy_neighbour",
    "bench.postgres",
    "bench.merkle",
    "bench.streams",
    "bench.viewer_perf",
    "bench.text_search",
    "bench.breakdown",
]

if __name__ == "__main__":
    args = sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        sys.stdout.write(__doc__.strip() + "\n\nModules run by default: " + " ".join(MODULES) + "\n")
        sys.exit(0)
    for name in args or MODULES:
        if not name.startswith("bench."):
            name = f"bench.{name}"
        importlib.import_module(name).main()
