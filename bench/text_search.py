"""Text search and the viewer's indexed filters on a 1,000,000-event SQLite store (issue 15.4).

Every search goes through the library (``AuditLog.list``, a page of 100 as the viewer asks),
so the time includes the SQL, the FTS5 trigram look-up and decoding the page. Goals: text
searches p95 < 100 ms; every indexed viewer filter (no text) p95 < 50 ms.

    .venv/bin/python -m bench.text_search                  # 1,000,000 events (built once, cached)
    .venv/bin/python -m bench.text_search --events 100000 --repeat 5

The store is the viewer benchmark's (``.cache/auditbird-bench/viewer-v1-N.db``, built by
``tests.plugins.browser.build_big_store`` under the same file lock), so the two share one build.
Each shape also prints its query plan's first step: a text search of 3 characters or more is
served by the trigram index (``audit_text``) or by a bounded newest-first window, never a scan
of the whole log; a 1-2 character term cannot use trigrams and walks the time index newest
first until the page is full (a short term matches most events, so that is a few hundred rows;
a short term matching almost nothing is the one search that reads the whole workspace, shown
here as ``short, rare``). The ``arm`` column says which way an indexed text search takes when
the newest 2,000 rows do not fill its page (narrow, intersect or wide: see
``auditbird.stores.sqlite_query._text_select``); ``--only WORD`` runs the shapes named so.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from auditbird import AuditLog
from auditbird.query import Query
from auditbird.stores.sqlite import SQLiteStore
from auditbird.stores.sqlite_query import TEXT_ARMS, build_select, build_text_arm_select

from .machine import describe, median, pct

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = "big"  # tests.plugins.browser.BIG_WORKSPACE
PAGE = 100

TEXT_GOAL_MS = 100
FILTER_GOAL_MS = 50


def store_path(events: int) -> Path:
    """The cached store of ``events`` events, built on first use under the viewer test's lock."""
    from tests.plugins.browser import BIG_VERSION, build_big_store

    cache = Path(os.environ.get("AUDITBIRD_BENCH_CACHE", ROOT / ".cache" / "auditbird-bench"))
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"viewer-{BIG_VERSION}-{events}.db"
    with open(cache / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            print(f"building {path} ({events:,} events, once)...", flush=True)
            build_big_store(path, events)
    return path


def shapes(events: int) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(text searches, indexed filters): name -> ``AuditLog.list`` filters."""
    day = 86_400_000
    end = int(time.time() * 1000)
    rare = f'"seq":{events // 3}}}'  # one event
    text = {
        "common word": {"text": "jnb"},
        "common JSON pair": {"text": '"region":"syd"'},
        "common, upper case": {"text": "SYD"},
        "rare (one event)": {"text": rare},
        "rare, in the id": {"text": "monitor:4321"},
        "medium (updated events)": {"text": "interval"},
        "no match": {"text": "zqxjkv"},
        "common + action": {"text": "gru", "action": "incident.resolved"},
        "rare + action": {"text": rare, "action": "monitor.down"},
        "common + 2 actions": {"text": "ams", "action": ["monitor.paused", "page.published"]},
        "common + actor": {"text": "fra", "actor_id": "user_42"},
        "common + actor + action (narrow)": {"text": "fra", "actor_id": "user_42", "action": "monitor.down"},
        "rare + actor": {"text": rare, "actor_id": "user_42"},
        "medium, in no event of the action": {"text": "interval", "action": "monitor.down"},
        "common + target type": {"text": "hkg", "target_type": "incident"},
        "common + target type + id": {"text": "iad", "target_type": "incident", "target_id": "77"},
        "rare + target type": {"text": rare, "target_type": "incident"},
        "common + stream": {"text": "syd", "event_id": "monitor:1234"},
        "common + last 24h": {"text": "syd", "since": end - day},
        "rare + last 30d": {"text": rare, "since": end - 30 * day},
        "medium + last 24h": {"text": "interval", "since": end - day},
        "short, common (2 chars)": {"text": "gr"},
        "short, common (1 char)": {"text": "7"},
        "short, rare (2 chars)": {"text": "Z!"},
    }
    filters = {
        "first page": {},
        "action": {"action": "monitor.paused"},
        "2 actions": {"action": ["monitor.paused", "incident.resolved"]},
        "actor": {"actor_id": "user_42"},
        "stream (event_id)": {"event_id": "monitor:1234"},
        "target type": {"target_type": "incident"},
        "target type + id": {"target_type": "incident", "target_id": "77"},
        "target id": {"target_id": "77"},
        "last 24h": {"since": end - day},
        "last 30d": {"since": end - 30 * day},
        "action + last 24h": {"action": "monitor.down", "since": end - day},
        "actor + action": {"actor_id": "user_42", "action": "monitor.down"},
    }
    return text, filters


def first_step(store: SQLiteStore, filters: dict[str, Any]) -> tuple[str, str]:
    """The query plan's driving steps for the SELECT the facade sends (a scan shows ``SCAN a``),
    and which arm an indexed text search takes (``-`` for other shapes; the store tries the
    newest rows first, so the arm runs only when they do not fill the page)."""
    action = filters.get("action")
    q = Query(
        workspace=WORKSPACE,
        actions=tuple([action] if isinstance(action, str) else action or ()),
        actor_id=filters.get("actor_id"),
        target_type=filters.get("target_type"),
        target_id=filters.get("target_id"),
        event_id=filters.get("event_id"),
        since=filters.get("since"),
        text=filters.get("text"),
        limit=PAGE,
    )
    sql, params = build_select(q, text_index=store.text_index)
    conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    try:
        steps = [r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
        arm_select = build_text_arm_select(q) if store.text_index and len(q.actions) < 2 else None
        arm = TEXT_ARMS[conn.execute(*arm_select).fetchone()[0]] if arm_select else "-"
    finally:
        conn.close()
    drivers = [s for s in steps if s.startswith(("SCAN", "SEARCH")) and "SUBQUERY" not in s]
    return "; ".join(dict.fromkeys(drivers))[:90], arm


def measure(log: AuditLog, filters: dict[str, Any], repeat: int) -> tuple[list[float], int]:
    log.list(limit=PAGE, **filters)  # warm the page cache for this shape
    times, found = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        page = log.list(limit=PAGE, **filters)
        times.append((time.perf_counter() - start) * 1000)
        found = len(page.events)
    return times, found


def report(
    title: str, store: SQLiteStore, log: AuditLog, cases: dict[str, dict[str, Any]], repeat: int, goal: float
) -> int:
    if not cases:
        return 0
    print(f"\n### {title} (goal: p95 < {goal:.0f} ms)\n")
    print("| shape | rows | p50 ms | p95 ms | goal | arm | plan (driving steps) |")
    print("|---|---:|---:|---:|:---:|---|---|")
    missed = 0
    all_times: list[float] = []
    for name, filters in cases.items():
        times, found = measure(log, filters, repeat)
        all_times.extend(times)
        p95 = pct(times, 0.95)
        ok = p95 < goal
        missed += not ok
        plan, arm = first_step(store, filters)
        print(
            f"| {name} | {found} | {median(times):.1f} | {p95:.1f} | {'ok' if ok else 'MISS'} "
            f"| {arm} | {plan} |"
        )
    print(
        f"\nall {title.lower()} together: p50 {median(all_times):.1f} ms, p95 {pct(all_times, 0.95):.1f} ms"
    )
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per shape")
    parser.add_argument("--only", default="", help="run only the shapes whose name contains this")
    args = parser.parse_args(argv)
    path = store_path(args.events)
    store = SQLiteStore(path)
    log = AuditLog(store, workspace=WORKSPACE)
    print(f"{args.events:,} events, page of {PAGE}, {args.repeat} runs per shape; {describe()}")
    print(f"trigram index: {'yes' if store.text_index else 'NO (SQLite without FTS5 trigram)'}")
    text, filters = shapes(args.events)
    text = {name: f for name, f in text.items() if args.only in name}
    filters = {name: f for name, f in filters.items() if args.only in name}
    missed = report("Indexed filters", store, log, filters, args.repeat, FILTER_GOAL_MS)
    missed += report("Text searches", store, log, text, args.repeat, TEXT_GOAL_MS)
    store.close()
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
