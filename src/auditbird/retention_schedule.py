"""``auditbird serve`` applies retention on a schedule: every ``AUDITBIRD_RETENTION_INTERVAL``
seconds (default 3600; 0 turns it off), for every workspace of the served SQLite log that has a
policy. Each run that removed something records a ``retention.apply`` event and is logged
(logger ``auditbird.retention``) with what it removed. Several ``--workers`` may each run it:
runs serialise on the file's write lock, and a second one finds nothing left to remove.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from .retention import apply_all
from .stores.sqlite import SQLiteStore

__all__ = ["DEFAULT_INTERVAL", "interval_from_env", "start", "stop"]

DEFAULT_INTERVAL = 3600.0
logger = logging.getLogger("auditbird.retention")


def interval_from_env() -> float:
    raw = os.environ.get("AUDITBIRD_RETENTION_INTERVAL", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_INTERVAL
    except ValueError:
        raise ValueError(
            f"AUDITBIRD_RETENTION_INTERVAL={raw!r}: give seconds between retention runs, or 0 for none"
        ) from None
    if value < 0:
        raise ValueError(f"AUDITBIRD_RETENTION_INTERVAL={raw!r}: give seconds >= 0 (0: no schedule)")
    return value


async def _loop(store: SQLiteStore, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            # A thread: a run is disk work that may take a while; the event loop keeps serving.
            reports = await asyncio.to_thread(apply_all, store)
        except Exception:  # a failed run (disk full, a lock held too long) must not stop the schedule
            logger.exception("retention run failed; retrying in %.0f s", interval)
            continue
        for report in reports:
            if report.removed:
                logger.warning("retention: %s", report.message())


def start(store: Any, interval: float) -> asyncio.Task[None] | None:
    """Start the schedule for ``store`` (only a SQLite log applies retention itself)."""
    if interval <= 0 or not isinstance(store, SQLiteStore):
        return None
    return asyncio.create_task(_loop(store, interval), name="auditbird-retention")


async def stop(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
