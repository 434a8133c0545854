"""``make bench``: run every benchmark module in bench/ that has a ``main()``."""

from __future__ import annotations

import importlib
import sys

MODULES = ["bench.core_sqlite", "bench.tinybird_ingest", "bench.projection", "bench.noisy_neighbour"]

if __name__ == "__main__":
    for name in sys.argv[1:] or MODULES:
        importlib.import_module(name).main()
