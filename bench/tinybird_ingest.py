"""Issue 3's benchmark: events/s into the Tinybird-compatible local server, in one run.

- batched: ``TinybirdStore.append`` (gzip NDJSON, ``wait=true``, batches of ``--batch-rows``)
- one POST per event: the way the seed's TypeScript client sends them (zod-bird's ingest
  endpoint: one ``POST /v0/events?name=...`` per ``publishAuditLog``), same ``wait=true``,
  keep-alive connection, no gzip
- the full facade path, ``AuditLog.publish_many`` (validation + encoding + the batched store)
- buffered: ``append`` of one event at a time into the durable spool (fsync each), then flush

The server runs in its own process (``auditbird tinybird local``); the client's CPU time is
``time.process_time()`` of this process, so "events per client CPU-second" is what one core of
the client sustains. Tinybird's documented Events API limits are per datasource: about 100
requests/s, 20 MB/s and 10 MB per request.

    .venv/bin/python -m bench.tinybird_ingest [--events 200000] [--single 2000] [--write]
"""

from __future__ import annotations

import argparse
import gzip
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from auditbird import AuditLog, Query, Tinybird
from auditbird.codec import encode
from auditbird.event import Event
from auditbird.stores._tinybird_http import encode_line
from auditbird.stores.tinybird import TinybirdStore

from .machine import describe

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Tinybird ingest"
LIMIT_REQUESTS, LIMIT_BYTES_PER_S, LIMIT_REQUEST_BYTES = 100, 20_000_000, 10_000_000


@contextmanager
def local_server(token: str, src: Path | None = None) -> Iterator[str]:
    """A ``tinybird local`` subprocess on a free loopback port (from ``src``, if given)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = tempfile.mkdtemp(prefix="auditbird-bench-tb-")
    env = dict(os.environ, PYTHONPATH=str(src)) if src is not None else None
    cmd = [sys.executable, "-m", "auditbird", "tinybird", "local", "--port", str(port), "--token", token]
    proc = subprocess.Popen(
        [*cmd, "--data", data], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/tokens", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the local Tinybird server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def make_events(n: int, workspace: str) -> list[Event]:
    return [
        Event(
            id=f"monitor:{i % 1000}",
            action="monitor.down",
            actor={"id": "42", "name": "checker"},
            targets=[{"id": str(i % 1000), "type": "monitor"}],
            metadata={"region": "gru", "statusCode": 400, "message": "timeout"},
            workspace=workspace,
        )
        for i in range(n)
    ]


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def count(store: TinybirdStore, workspace: str) -> int:
    return len(store.query(Query(workspace=workspace, event_id=None, limit=None)))


def run(args: argparse.Namespace) -> str:
    token = f"p.bench-{uuid.uuid4().hex}"
    with local_server(token) as url:
        tb = Tinybird(token=token, host=url)
        store = TinybirdStore(tb, batch_rows=args.batch_rows, max_retry_time=120, timeout=60)

        store.append([encode(e) for e in make_events(2_000, "warmup")])  # chDB's first insert is slow

        # batched
        ws = f"b-{uuid.uuid4().hex[:8]}"
        rows = [encode(e) for e in make_events(args.events, ws)]
        lines = [encode_line(r) for r in rows]
        raw_bytes = sum(len(x) + 1 for x in lines)
        gz_bytes = len(gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=1, mtime=0))
        wall, cpu = timed(lambda: store.append(rows))
        assert count(store, ws) == args.events, "batched: not every event was stored"
        requests = -(-args.events // args.batch_rows)
        batched = args.events / wall
        batched_cpu = args.events / cpu

        # one POST per event (zod-bird's ingest endpoint), wait=true, keep-alive
        ws1 = f"s-{uuid.uuid4().hex[:8]}"
        single_lines = [encode_line(encode(e)) for e in make_events(args.single, ws1)]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:

            def one_by_one() -> None:
                for line in single_lines:
                    client.post("/v0/events", params={"name": "audit_log", "wait": "true"}, content=line)

            wall1, cpu1 = timed(one_by_one)
        assert count(store, ws1) == args.single, "per-event: not every event was stored"
        single = args.single / wall1

        # the facade: validate + encode + send
        ws2 = f"f-{uuid.uuid4().hex[:8]}"
        dicts = [{**e.to_dict(), "uid": None} for e in make_events(args.facade, ws2)]
        for d in dicts:
            del d["uid"]
        log = AuditLog(store)
        wall2, cpu2 = timed(lambda: log.publish_many(dicts))
        assert count(store, ws2) == args.facade

        # buffered: one durable spool write per event, then one flush
        ws3 = f"q-{uuid.uuid4().hex[:8]}"
        spool = Path(tempfile.mkdtemp(prefix="auditbird-bench-spool-")) / "bench.spool"
        brows = [encode(e) for e in make_events(args.buffered, ws3)]
        buffered_store = TinybirdStore(
            tb, buffered=True, spool_path=spool, batch_rows=args.batch_rows, flush_interval=3600
        )

        def spool_each() -> None:
            for row in brows:
                buffered_store.append([row])

        wall3, _ = timed(spool_each)
        wall4, _ = timed(buffered_store.close)
        assert count(store, ws3) == args.buffered
        store.close()

    row_bytes = raw_bytes / args.events
    per_request = raw_bytes / requests
    lines_out = [
        SECTION,
        "",
        f"`python -m bench.tinybird_ingest --events {args.events} --single {args.single} "
        f"--batch-rows {args.batch_rows}` · {describe()}",
        "",
        "Into `auditbird tinybird local` (chDB) on the same machine, `wait=true` everywhere (each",
        "request acknowledged by the database), one client thread. Every run's rows were read back",
        "and counted through the list pipe.",
        "",
        "| path | events | wall events/s | events per client CPU-s |",
        "|---|---:|---:|---:|",
        f"| batched `TinybirdStore.append` (gzip NDJSON, {args.batch_rows:,} rows/request) "
        f"| {args.events:,} | **{batched:,.0f}** | {batched_cpu:,.0f} |",
        f"| one POST per event (zod-bird's ingest endpoint, keep-alive) | {args.single:,} "
        f"| {single:,.0f} | {args.single / max(cpu1, 1e-9):,.0f} |",
        f"| `AuditLog.publish_many` (validation + encoding + batched store) | {args.facade:,} "
        f"| {args.facade / wall2:,.0f} | {args.facade / cpu2:,.0f} |",
        f"| buffered `append` of 1 event (durable spool, fsync each) | {args.buffered:,} "
        f"| {args.buffered / wall3:,.0f} | — |",
        f"| buffered: `close()` sending the spool | {args.buffered:,} | {args.buffered / wall4:,.0f} | — |",
        "",
        f"**Batched vs one POST per event: {batched / single:,.0f}x** (goal ≥ 50x); batched client: "
        f"{batched_cpu:,.0f} events per CPU-second of one core (goal ≥ 50,000).",
        "",
        "Wall rates are bound by the local server, which shares the machine's cores with the client",
        "(it checks every NDJSON line in Python before chDB's insert); the CPU column is the client",
        "alone (`Event` -> row encoding excluded, except in the `publish_many` row). Wall numbers move",
        "by tens of percent between runs on a shared machine.",
        "",
        "Against Tinybird's documented Events API limits per datasource:",
        "",
        f"- request size: {per_request / 1e6:.1f} MB uncompressed per request "
        f"({per_request * gz_bytes / raw_bytes / 1e6:.2f} MB gzipped) — limit 10 MB; the client caps "
        "a request at 8 MiB uncompressed and halves a batch on 413.",
        f"- request rate: {requests / wall:.1f} requests/s — limit ~100/s: batching keeps the client "
        "two orders of magnitude below it; one POST per event would hit it at 100 events/s.",
        f"- bandwidth: {raw_bytes / wall / 1e6:.1f} MB/s uncompressed, {gz_bytes / wall / 1e6:.2f} MB/s "
        f"on the wire ({row_bytes:.0f} B/event, gzip ×{raw_bytes / gz_bytes:.0f}) — limit 20 MB/s. "
        f"At 20 MB/s of uncompressed NDJSON a workspace takes ~{LIMIT_BYTES_PER_S / row_bytes:,.0f} "
        f"events/s; the client's CPU alone would sustain {batched_cpu * row_bytes / 1e6:.0f} MB/s, so "
        "against real Tinybird the documented limit, not the client, is the bound.",
        "",
    ]
    return "\n".join(lines_out)


def write_section(text: str) -> None:
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start = current.find(SECTION)
    if start == -1:
        updated = current.rstrip("\n") + "\n\n" + text
    else:
        end = current.find("\n## ", start + len(SECTION))
        updated = current[:start] + text + ("" if end == -1 else current[end:])
    RESULTS.write_text(updated)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--single", type=int, default=2_000)
    parser.add_argument("--facade", type=int, default=50_000)
    parser.add_argument("--buffered", type=int, default=2_000)
    parser.add_argument("--batch-rows", type=int, default=20_000)
    parser.add_argument("--write", action="store_true", help=f"replace the section in {RESULTS.name}")
    args, _ = parser.parse_known_args()
    text = run(args)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
