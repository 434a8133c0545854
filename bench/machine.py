"""What machine a benchmark ran on, for bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
from datetime import UTC, datetime


def describe() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {os.cpu_count()} cores · {model} · "
        f"Python {platform.python_version()} · SQLite {sqlite3.sqlite_version}"
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)
