"""Issue 13's benchmarks: the PostgreSQL store against a raw psycopg floor and eventsourcing's
PostgreSQL recorder, on one server, side by side.

- single durable publish: ``AuditLog.publish_audit_log`` vs the floor's transaction (the same
  table lock and INSERTs into the same tables, rows prepared, no auditbird code) vs
  eventsourcing saving one event
- batches of 1,000: ``publish_many`` vs the floor (lock + ``executemany``) vs eventsourcing
- 16 concurrent publishers (threads): throughput and p99 latency, each contender alone
- a stream's history on a large table: ``get_audit_log`` p50 vs the same SELECT, raw, each on
  streams nobody read before (cold), then both on the same stream again (hot)
- ``text=`` searches on that table without the opt-in trigram index, then with it

    .venv/bin/python -m bench.postgres [--url postgresql://...] [--events 1000000]

Without ``--url`` it starts a throwaway cluster (tests/plugins/postgres.py), fsync on.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from auditbird import AuditLog
from auditbird.codec import encode
from auditbird.event import Event
from auditbird.query import Query
from auditbird.stores.postgres import PostgresStore
from auditbird.stores.postgres_query import build_select

from .machine import describe, median, pct

ROUNDS = 10


def seed_event(i: int, stream: str | None = None) -> dict[str, Any]:
    return {
        "id": stream or f"monitor:{i % 1000}",
        "action": "monitor.down",
        "actor": {"id": "42", "name": "checker"},
        "targets": [{"id": str(i % 1000), "type": "monitor"}],
        "metadata": {"region": "gru", "statusCode": 400, "message": "timeout"},
    }


# -- the raw floor ------------------------------------------------------------------------------

FLOOR_INSERT = (
    "INSERT INTO audit_log (position, uid, workspace, id, action, actor, targets, metadata, timestamp, "
    "version, actor_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
FLOOR_TARGET = (
    "INSERT INTO audit_target (position, workspace, type, target_id, timestamp, uid) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)


def prepared(n: int) -> list[tuple[Any, ...]]:
    """Rows as the store writes them (actor_id included) and their target id; positions are
    left to the writer."""
    out = []
    for i in range(n):
        row = encode(Event.model_validate(seed_event(i)))
        out.append((*row[:9], "42", json.loads(row.targets)[0]["id"]))
    return out


class Floor:
    """The same tables, lock and INSERTs as the store, with prepared rows: what PostgreSQL costs."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url)

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        with self.conn.transaction():
            self.conn.execute("LOCK TABLE audit_log IN EXCLUSIVE MODE")
            (last,) = self.conn.execute("SELECT coalesce(max(position), 0) FROM audit_log").fetchone()
            numbered = [(last + k + 1, *r[:10]) for k, r in enumerate(rows)]
            # uid, workspace, the target id prepared beside the row (r[10]), timestamp
            targets = [(last + k + 1, r[1], "monitor", r[10], r[7], r[0]) for k, r in enumerate(rows)]
            with self.conn.cursor() as cur:
                if len(numbered) == 1:
                    cur.execute(FLOOR_INSERT, numbered[0])
                    cur.execute(FLOOR_TARGET, targets[0])
                else:
                    cur.executemany(FLOOR_INSERT, numbered)
                    cur.executemany(FLOOR_TARGET, targets)

    def close(self) -> None:
        self.conn.close()


# -- eventsourcing ------------------------------------------------------------------------------


class Monitor(Aggregate):
    def __init__(self) -> None:
        self.downs = 0

    @event("Down")
    def down(self, region: str, statusCode: int, message: str) -> None:  # noqa: N803
        self.downs += 1


def es_app(url: str) -> Any:
    parts = psycopg.conninfo.conninfo_to_dict(url)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(parts["dbname"]),
        "POSTGRES_HOST": str(parts.get("host", "127.0.0.1")),
        "POSTGRES_PORT": str(parts.get("port", "5432")),
        "POSTGRES_USER": str(parts.get("user", "postgres")),
        "POSTGRES_PASSWORD": str(parts.get("password", "unused")),
        "POSTGRES_POOL_SIZE": "16",
        "POSTGRES_MAX_OVERFLOW": "4",
    }
    return Application[Any](env=env)


def fresh_database(admin_url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = psycopg.conninfo.conninfo_to_dict(admin_url)
    parts["dbname"] = name
    return psycopg.conninfo.make_conninfo(**parts)  # type: ignore[arg-type]


def as_url(conninfo: str) -> str:
    p = psycopg.conninfo.conninfo_to_dict(conninfo)
    auth = p.get("user", "postgres")
    return f"postgresql://{auth}@{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}/{p['dbname']}"


# -- measurements -------------------------------------------------------------------------------


def _ratios(rates: dict[str, float]) -> str:
    return (
        f"  auditbird/raw = {rates['auditbird'] / rates['raw']:.2f}  "
        f"auditbird/eventsourcing = {rates['auditbird'] / rates['eventsourcing']:.2f}"
    )


def bench_single(admin: str, n: int) -> dict[str, float]:
    per_round = n // ROUNDS
    floor_url, ab_url, es_url = (as_url(fresh_database(admin)) for _ in range(3))
    PostgresStore(floor_url).close()  # the floor writes into the store's schema
    floor, rows = Floor(floor_url), prepared(n)
    log = AuditLog(ab_url)
    events = [seed_event(i) for i in range(n)]
    app = es_app(es_url)
    monitor = Monitor()
    app.save(monitor)
    gc.collect()
    gc.freeze()
    spent = {"raw": 0.0, "auditbird": 0.0, "eventsourcing": 0.0}
    for r in range(ROUNDS):
        part = slice(r * per_round, (r + 1) * per_round)
        t = time.perf_counter()
        for row in rows[part]:
            floor.write([row])
        spent["raw"] += time.perf_counter() - t
        t = time.perf_counter()
        for e in events[part]:
            log.publish_audit_log(e)
        spent["auditbird"] += time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(per_round):
            monitor.down(region="gru", statusCode=400, message="timeout")
            app.save(monitor)
        spent["eventsourcing"] += time.perf_counter() - t
    floor.close()
    log.close()
    app.close()
    return {k: per_round * ROUNDS / v for k, v in spent.items()}


def bench_batches(admin: str, batches: int, size: int = 1_000) -> dict[str, float]:
    floor_url, ab_url, es_url = (as_url(fresh_database(admin)) for _ in range(3))
    PostgresStore(floor_url).close()
    floor = Floor(floor_url)
    rows = [prepared(size) for _ in range(batches)]
    for b, batch in enumerate(rows):  # fresh uids per batch
        rows[b] = [(f"{b:06d}{i:06d}", *r[1:]) for i, r in enumerate(batch)]
    log = AuditLog(ab_url)
    inputs = [[seed_event(b * size + i) for i in range(size)] for b in range(batches)]
    app = es_app(es_url)
    gc.collect()
    gc.freeze()
    spent = {"raw": 0.0, "auditbird": 0.0, "eventsourcing": 0.0}
    for b in range(batches):
        t = time.perf_counter()
        floor.write(rows[b])
        spent["raw"] += time.perf_counter() - t
        t = time.perf_counter()
        log.publish_many(inputs[b])
        spent["auditbird"] += time.perf_counter() - t
        t = time.perf_counter()
        monitor = Monitor()
        for _ in range(size - 1):
            monitor.down(region="gru", statusCode=400, message="timeout")
        app.save(monitor)
        spent["eventsourcing"] += time.perf_counter() - t
    floor.close()
    log.close()
    app.close()
    return {k: batches * size / v for k, v in spent.items()}


def bench_concurrent(admin: str, publishers: int, per_publisher: int) -> dict[str, dict[str, float]]:
    """Each contender alone: ``publishers`` threads, single durable publishes."""
    results = {}
    for name in ("raw", "auditbird", "eventsourcing"):
        url = as_url(fresh_database(admin))
        latencies: list[float] = []
        lock = threading.Lock()
        if name == "raw":
            PostgresStore(url).close()
            rows = prepared(publishers * per_publisher)
            rows = [(f"{i:012d}", *r[1:]) for i, r in enumerate(rows)]
            floors = [Floor(url) for _ in range(publishers)]

            def work(p: int, floors: list[Floor] = floors, rows: list[Any] = rows) -> list[float]:
                mine = []
                for row in rows[p * per_publisher : (p + 1) * per_publisher]:
                    t = time.perf_counter()
                    floors[p].write([row])
                    mine.append(time.perf_counter() - t)
                return mine

            closers: list[Any] = floors
        elif name == "auditbird":
            log = AuditLog(PostgresStore(url, pool_size=publishers))

            def work(p: int, log: AuditLog = log) -> list[float]:
                mine = []
                for i in range(per_publisher):
                    t = time.perf_counter()
                    log.publish_audit_log(seed_event(i, f"monitor:{p}"))
                    mine.append(time.perf_counter() - t)
                return mine

            closers = [log]
        else:
            app = es_app(url)

            def work(p: int, app: Any = app) -> list[float]:
                monitor, mine = Monitor(), []
                app.save(monitor)
                for _ in range(per_publisher):
                    t = time.perf_counter()
                    monitor.down(region="gru", statusCode=400, message="timeout")
                    app.save(monitor)
                    mine.append(time.perf_counter() - t)
                return mine

            closers = [app]

        def run(p: int, work: Any = work, lock: Any = lock, latencies: list[float] = latencies) -> None:
            got = work(p)
            with lock:
                latencies.extend(got)

        threads = [threading.Thread(target=run, args=(p,)) for p in range(publishers)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - t
        for c in closers:
            c.close()
        results[name] = {
            "events_per_s": len(latencies) / elapsed,
            "p50_ms": median(latencies) * 1000,
            "p99_ms": pct(latencies, 0.99) * 1000,
        }
    return results


def bench_read(admin: str, n: int, streams: int, samples: int) -> dict[str, Any]:
    url = as_url(fresh_database(admin))
    PostgresStore(url).close()
    t = time.perf_counter()
    template = encode(Event.model_validate(seed_event(0)))
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")  # building the fixture only
        with conn.cursor().copy(
            "COPY audit_log (position, uid, workspace, id, action, actor, targets, metadata, timestamp, "
            "version, actor_id) FROM STDIN"
        ) as copy:
            for i in range(n):
                copy.write_row(
                    (i + 1, f"{i:032x}", "", f"monitor:{i % streams}", template.action, template.actor,
                     f'[{{"id":"{i % streams}","type":"monitor"}}]', template.metadata,
                     1_700_000_000_000 + i, 1, "42")
                )  # fmt: skip
        conn.execute(
            "INSERT INTO audit_target SELECT position, workspace, 'monitor', "
            "substr(id, 9), timestamp, uid FROM audit_log"
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE audit_log")
        conn.execute("VACUUM ANALYZE audit_target")
    build_s = time.perf_counter() - t
    rng = random.Random(7)
    # Each contender reads streams nobody read before (cold: pages from the OS cache or disk),
    # a different set each, taking turns; then both read the raw side's stream again (hot: in
    # shared buffers), so what decoding adds shows apart from what page reads cost.
    fresh = rng.sample(range(streams), 2 * samples)
    times: dict[str, list[float]] = {k: [] for k in ("raw_cold", "ab_cold", "raw_hot", "ab_hot")}
    with psycopg.connect(url, autocommit=True) as raw, AuditLog(url) as log:

        def raw_read(stream: str, key: str) -> None:
            sql, params = build_select(Query(event_id=stream, limit=None))
            t = time.perf_counter()
            raw.execute(sql, params, prepare=True).fetchall()
            times[key].append(time.perf_counter() - t)

        def ab_read(stream: str, key: str) -> None:
            t = time.perf_counter()
            events = log.get_audit_log(event_id=stream)
            times[key].append(time.perf_counter() - t)
            assert len(events) == n // streams

        for k in range(samples):
            mine, theirs = f"monitor:{fresh[2 * k]}", f"monitor:{fresh[2 * k + 1]}"
            cold = [(raw_read, mine, "raw_cold"), (ab_read, theirs, "ab_cold")]
            hot = [(raw_read, mine, "raw_hot"), (ab_read, mine, "ab_hot")]
            for read, stream, key in (*cold, *hot) if k % 2 else (*cold[::-1], *hot[::-1]):
                read(stream, key)
    out: dict[str, Any] = {f"{key}_p50_ms": median(v) * 1000 for key, v in times.items()}
    out.update({f"{key}_p99_ms": pct(v, 0.99) * 1000 for key, v in times.items()})
    out["build_s"] = build_s
    out["url"] = url
    return out


def bench_text(url: str, samples: int = 5) -> dict[str, float]:
    """``list(text=..., limit=50)`` on the read table without the opt-in trigram index, then
    with it: a word in every event, one stream's id (50 events, spread over the table), nothing."""
    searches = {"common": "timeout", "rare": "monitor:19999", "none": "no such text"}
    out: dict[str, float] = {}
    for indexed in (False, True):
        t = time.perf_counter()
        store = PostgresStore(url, text_index=indexed)
        if indexed:
            out["index_build_s"] = time.perf_counter() - t
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE audit_log")
        with AuditLog(store) as log:
            for name, text in searches.items():
                spent = []
                for _ in range(samples):
                    t = time.perf_counter()
                    log.list(text=text, limit=50)
                    spent.append(time.perf_counter() - t)
                out[f"{name}_{'indexed' if indexed else 'scan'}_p50_ms"] = median(spent) * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", help="a superuser URL of a server to use (default: a throwaway cluster)")
    parser.add_argument("--single", type=int, default=2_000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--publishers", type=int, default=16)
    parser.add_argument("--per-publisher", type=int, default=200)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--streams", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--parts", default="single,batch,concurrent,read,text", help="which measurements")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    server = None
    if args.url:
        admin = args.url
    else:
        from tests.plugins.postgres import PostgresServer, _bindir, _free_port, _os_user

        server = PostgresServer(
            Path(tempfile.mkdtemp(prefix="auditbird-bench-pg-")), _free_port(), _bindir(), _os_user()
        )
        server.init()
        server.start()
        admin = server.url()
    try:
        with psycopg.connect(admin) as conn:
            (version,) = conn.execute("SHOW server_version").fetchone()
            (fsync,) = conn.execute("SHOW fsync").fetchone()
        print(describe(), f"· PostgreSQL {version} (fsync={fsync}) · psycopg {psycopg.__version__}")
        if "single" in parts:
            single = bench_single(admin, args.single)
            print(f"single publish/s: {single}")
            print(_ratios(single))
        if "batch" in parts:
            batch = bench_batches(admin, args.batches)
            print(f"batched events/s: {batch}")
            print(_ratios(batch))
        if "concurrent" in parts:
            concurrent = bench_concurrent(admin, args.publishers, args.per_publisher)
            for name, r in concurrent.items():
                print(
                    f"{args.publishers} publishers, {name}: {r['events_per_s']:,.0f}/s "
                    f"p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms"
                )
        if "read" in parts or "text" in parts:
            read = bench_read(admin, args.events, args.streams, args.samples)
            print(f"stream read on {args.events:,} events: {read}")
            for temp in ("cold", "hot"):
                ratio = read[f"ab_{temp}_p50_ms"] / read[f"raw_{temp}_p50_ms"]
                print(f"  {temp}: auditbird p50 / raw p50 = {ratio:.2f}")
            if "text" in parts:
                print(f"text search on {args.events:,} events: {bench_text(str(read['url']))}")
    finally:
        if server is not None:
            server.stop("immediate")
            import shutil

            shutil.rmtree(server.root, ignore_errors=True)
    os.environ.pop("PERSISTENCE_MODULE", None)


if __name__ == "__main__":
    main()
