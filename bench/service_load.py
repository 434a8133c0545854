"""Load on the REST service over loopback vs. the library directly, on the embedded SQLite store.

    python -m bench.service_load [--seconds 10] [--connections 32] [--workers 1]

Starts a real ``auditbird serve`` process over a fresh SQLite file (durable commits, the
default), drives it with a small raw HTTP/1.1 keep-alive client on asyncio (a Python client
library would be the bottleneck on 2 cores), then publishes the same events through
``AuditLog`` in this process, and times the library's parts (validation, encoding, the SQLite
insert) on the same batches. Writes the ``## Service`` section of bench/RESULTS.md.

To compare two versions of the code in one session, run it twice with ``PYTHONPATH`` pointing
at each ``src`` (the server process inherits it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.machine import describe, pct

EVENT = {
    "id": "monitor:1",
    "action": "monitor.down",
    "actor": {"id": "1", "name": "mxkaske"},
    "targets": [{"id": "1", "type": "monitor"}],
    "metadata": {"region": "gru", "statusCode": 400, "message": "timeout"},
}
RESULTS = Path(__file__).with_name("RESULTS.md")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU so far of a process and its children (``--workers``); Linux, else 0."""

    def stat(path: str) -> list[str]:
        with open(path) as f:
            return f.read().rsplit(")", 1)[1].split()

    total = 0.0
    try:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = stat(f"/proc/{entry}/stat")
            except OSError:
                continue
            if int(entry) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


METRICS_TOKEN = "bench-metrics-token"


def start_server(directory: Path, workers: int) -> tuple[subprocess.Popen[bytes], str, str]:
    db = directory / "service.db"
    keys = directory / "service.keys.db"
    port = _free_port()
    env = {**os.environ, "AUDITBIRD_RATE_LIMIT": "0", "AUDITBIRD_ACTIONS": "auditbird.catalog.openstatus"}
    env["AUDITBIRD_METRICS_TOKEN"] = METRICS_TOKEN  # events written are shown to its holder only
    cmd = [sys.executable, "-c", "from auditbird.cli import main; main()", "--store", f"sqlite:///{db}"]
    cmd += [
        "serve",
        "--port",
        str(port),
        "--keys",
        str(keys),
        "--log-level",
        "warning",
        "--workers",
        str(workers),
    ]
    process = subprocess.Popen(cmd, env=env)
    from auditbird.service.keys import KeyStore

    store = KeyStore(keys)
    key = store.create(workspace="bench", scope="admin", name="bench").secret
    store.close()
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url, key
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


class Connection:
    """One keep-alive HTTP/1.1 connection: send a prepared request, read one response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def call(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        match = re.search(rb"(?i)content-length:\s*(\d+)", head)
        if match:
            await self.reader.readexactly(int(match.group(1)))
        return status

    def close(self) -> None:
        self.writer.close()


NDJSON = "application/x-ndjson"


def _request(port: int, key: str, body: bytes, minimal: bool, media: str = "application/json") -> bytes:
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: {media}\r\nContent-Length: {len(body)}\r\n"
        + ("Prefer: return=minimal\r\n" if minimal else "")
        + "\r\n"
    )
    return head.encode() + body


async def load(
    url: str,
    key: str,
    *,
    body: bytes,
    connections: int,
    seconds: float,
    minimal: bool,
    media: str = "application/json",
) -> dict[str, Any]:
    port = int(url.rsplit(":", 1)[1])
    request = _request(port, key, body, minimal, media)
    conns = [await Connection.open(port) for _ in range(connections)]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(conn: Connection) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            status = await conn.call(request)
            latencies.append(time.perf_counter() - t)
            if status != 201:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 0.50) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        "errors": errors,
    }


def library(directory: Path, singles: int, batches: int) -> dict[str, float]:
    import auditbird.catalog.openstatus  # noqa: F401 - the same schemas the server validates with
    from auditbird import AuditLog
    from auditbird.codec import encode
    from auditbird.service.ingest import parse_events
    from auditbird.stores.sqlite import SQLiteStore
    from auditbird.validation import validate_events

    with AuditLog(f"sqlite:///{directory / 'library.db'}", workspace="bench") as log:
        latencies = []
        started = time.perf_counter()
        for _ in range(singles):
            t = time.perf_counter()
            log.publish_audit_log(EVENT)
            latencies.append(time.perf_counter() - t)
        single = singles / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(batches):
            log.publish_many([EVENT] * 1_000)
        batch = batches * 1_000 / (time.perf_counter() - started)
        # Where publish_many's time goes, per event: the same 1,000-event batches, part by part.
        body = _ndjson([EVENT] * 1_000)
        # CPU stages in CPU time (thread_time: what the stage costs, not what other processes on
        # a shared machine took meanwhile); the disk wait as wall time, synced minus unsynced.
        parse_s = validate_s = encode_s = insert_cpu_s = insert_s = nosync_s = notree_s = 0.0
        store = SQLiteStore(directory / "parts.db")
        unsynced = SQLiteStore(directory / "parts-nosync.db", synchronous="OFF")
        treeless = SQLiteStore(directory / "parts-notree.db", synchronous="OFF", tree=False)
        for _ in range(batches):
            t = time.thread_time()
            items, _ = parse_events(body, NDJSON, 10_000)
            parse_s += time.thread_time() - t
            t = time.thread_time()
            events = validate_events(items, log.registry, workspace="bench")
            validate_s += time.thread_time() - t
            t = time.thread_time()
            rows = [encode(e) for e in events]
            encode_s += time.thread_time() - t
            t, c = time.perf_counter(), time.thread_time()
            store.append(rows)
            insert_s += time.perf_counter() - t
            insert_cpu_s += time.thread_time() - c
            t = time.perf_counter()
            unsynced.append(rows)  # the same insert without waiting for the disk
            nosync_s += time.perf_counter() - t
            c = time.thread_time()
            treeless.append(rows)  # and without the Merkle tree (provable history)
            notree_s += time.thread_time() - c
        store.close()
        unsynced.close()
        treeless.close()
    n = batches * 1_000
    return {
        "single": single,
        "p50_ms": pct(latencies, 0.5) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        "batch": batch,
        "parse_us": parse_s / n * 1e6,
        "validate_us": validate_s / n * 1e6,
        "encode_us": encode_s / n * 1e6,
        "insert_us": insert_s / n * 1e6,
        "insert_cpu_us": insert_cpu_s / n * 1e6,
        "nosync_us": nosync_s / n * 1e6,
        "notree_us": notree_s / n * 1e6,
    }


def _ndjson(events: list[dict[str, Any]]) -> bytes:
    return b"\n".join(json.dumps(e).encode() for e in events) + b"\n"


def write_section(text: str) -> None:
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(r"^## Service\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        current = pattern.sub(lambda _: text, current)
    else:
        current = current.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(current)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--library-singles", type=int, default=3_000)
    parser.add_argument("--library-batches", type=int, default=30)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="auditbird-bench-") as tmp:
        directory = Path(tmp)
        process, url, key = start_server(directory, args.workers)
        cpu: dict[str, float] = {}
        try:
            one = json.dumps(EVENT).encode()
            batch = json.dumps([EVENT] * 1_000).encode()
            asyncio.run(load(url, key, body=one, connections=4, seconds=1, minimal=False))  # warm up

            def run(
                name: str, body: bytes, connections: int, minimal: bool, media: str = "application/json"
            ) -> dict[str, Any]:
                before = _cpu_seconds(process.pid)
                client_before = time.process_time()
                result = asyncio.run(
                    load(
                        url,
                        key,
                        body=body,
                        connections=connections,
                        seconds=args.seconds,
                        minimal=minimal,
                        media=media,
                    )
                )
                cpu[name] = _cpu_seconds(process.pid) - before
                # The client shares the 2 cores: its own CPU says whether it, not the server,
                # set the pace (a client near 100% of a core would be the bottleneck).
                result["client_core"] = (time.process_time() - client_before) / args.seconds
                result["server_core"] = cpu[name] / args.seconds
                return result

            single = run("single", one, args.connections, False)
            batches = run("batches", batch, args.batch_connections, True)
            ndjson = run("ndjson", _ndjson([EVENT] * 1_000), args.batch_connections, True, NDJSON)
            full = run("full", batch, args.batch_connections, False)
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as c:
                metrics = c.get("/metrics").text
            written = int(re.search(r"^auditbird_events_written_total (\d+)", metrics, re.M).group(1))  # type: ignore[union-attr]
        finally:
            process.terminate()
            process.wait(timeout=30)
        direct = library(directory, args.library_singles, args.library_batches)

    batch_eps = batches["rps"] * 1_000
    ndjson_eps = ndjson["rps"] * 1_000
    ndjson_cpu_us = cpu["ndjson"] / max(1, ndjson["requests"] * 1_000) * 1e6 if cpu.get("ndjson") else 0.0
    full_eps = full["rps"] * 1_000
    parts = direct["parse_us"] + direct["validate_us"] + direct["encode_us"] + direct["insert_cpu_us"]
    fsync_us = max(0.0, direct["insert_us"] - direct["nosync_us"])
    one_core = 1e6 / parts
    single_cpu_us = cpu["single"] / max(1, single["requests"]) * 1e6 if cpu.get("single") else 0.0
    batch_cpu_us = cpu["batches"] / max(1, batches["requests"] * 1_000) * 1e6 if cpu.get("batches") else 0.0

    def verdict(value: float, goal: float) -> str:
        return "**met**" if value >= goal else f"**missed** ({value / goal:.0%} of it)"

    lines = [
        "## Service",
        "",
        f"`python -m bench.service_load --seconds {args.seconds:g} --connections {args.connections}"
        f" --workers {args.workers}` · {describe()}",
        "",
        "A real `auditbird serve` (uvicorn, httptools, uvloop; group commit) over a fresh SQLite file with",
        "durable commits (WAL, synchronous=FULL), on loopback, driven by an asyncio keep-alive HTTP/1.1",
        "client in another process on the same 2 cores. The library rows are `AuditLog` in one process on",
        "the same kind of file. Same event (the seed's `monitor.down`, schema-validated) everywhere.",
        "",
        "| path | events/s | p50 ms | p99 ms | server CPU µs/event | goal |",
        "|---|---:|---:|---:|---:|---|",
        f"| service: single-event POSTs ({args.connections} connections) | {single['rps']:,.0f} "
        f"| {single['p50_ms']:.1f} | {single['p99_ms']:.1f} | {single_cpu_us:.0f} "
        f"| ≥ 5,000: {verdict(single['rps'], 5_000)} |",
        f"| service: POSTs of 1,000 events, `Prefer: return=minimal` ({args.batch_connections} connections) "
        f"| {batch_eps:,.0f} | {batches['p50_ms']:.1f} | {batches['p99_ms']:.1f} | {batch_cpu_us:.1f} "
        f"| ≥ 100,000: {verdict(batch_eps, 100_000)} |",
        f"| service: NDJSON POSTs of 1,000 events, `Prefer: return=minimal` "
        f"| {ndjson_eps:,.0f} | {ndjson['p50_ms']:.1f} | {ndjson['p99_ms']:.1f} | {ndjson_cpu_us:.1f} "
        f"| ≥ 100,000: {verdict(ndjson_eps, 100_000)} |",
        f"| service: POSTs of 1,000 events, full answer (the stored events) | {full_eps:,.0f} "
        f"| {full['p50_ms']:.1f} | {full['p99_ms']:.1f} | | |",
        f"| library: `publish_audit_log` one at a time | {direct['single']:,.0f} "
        f"| {direct['p50_ms']:.2f} | {direct['p99_ms']:.2f} | | |",
        f"| library: `publish_many` of 1,000 | {direct['batch']:,.0f} | | | | |",
        "",
        "Cores used while loaded (server processes / the bench's own client), and the machine's load "
        f"average at the end ({' '.join(f'{x:.2f}' for x in os.getloadavg())}): "
        + ", ".join(
            f"{name} {r['server_core']:.0%} / {r['client_core']:.0%}"
            for name, r in (("single", single), ("batches", batches), ("NDJSON", ndjson), ("full", full))
        )
        + ".",
        "",
        f"Ratios, service / library: single events **{single['rps'] / direct['single']:.2f}x**, "
        f"batches **{batch_eps / direct['batch']:.2f}x**, NDJSON batches "
        f"**{ndjson_eps / direct['batch']:.2f}x**. Errors: "
        f"{single['errors'] + batches['errors'] + ndjson['errors'] + full['errors']}; "
        f"events written (server metric): {written:,}.",
        "",
        "Per-stage cost per event of an NDJSON batch of 1,000, measured in this run (CPU µs/event, "
        "in this process; the fsync is wall time):",
        "",
        "| stage | µs/event |",
        "|---|---:|",
        f"| parse (NDJSON lines, pydantic-core) | {direct['parse_us']:.2f} |",
        f"| validate (envelope + metadata schema) | {direct['validate_us']:.2f} |",
        f"| encode (Event -> row) | {direct['encode_us']:.2f} |",
        f"| SQLite insert: rows, 6 indexes, targets, FTS, Merkle (CPU) | {direct['insert_cpu_us']:.2f} |",
        f"| … of which the Merkle tree (the same insert with `tree=off`, CPU) "
        f"| {max(0.0, direct['insert_cpu_us'] - direct['notree_us']):.2f} |",
        f"| fsync (wall: durable insert minus the same insert unsynced) | {fsync_us:.2f} |",
        f"| HTTP + service (server CPU per event minus the stages above) "
        f"| {max(0.0, ndjson_cpu_us - parts):.2f} |",
        f"| server CPU per event, NDJSON batches (all server processes) | {ndjson_cpu_us:.2f} |",
        "",
        f"Parse + validate + encode + insert: {parts:.1f} CPU µs per event, i.e. at most "
        f"**{one_core:,.0f} events/s per core** before any HTTP, and {2 * one_core:,.0f}/s if both cores "
        "did nothing else.",
        "",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section(text + READING)


READING = """\
Reading it (the machine is shared with other engineers' runs; numbers move by tens of percent):

- `POST /v1/events` is served by a pure-ASGI handler inside the metrics middleware: no routing,
  no dependency injection (the FastAPI route stays, for the OpenAPI document, and answers the
  same: tested). Verified API keys are cached (a revoke is seen on the next request, at the
  latest after 1 s), bodies are parsed and answers written by pydantic-core, and the server
  process freezes its start-up heap out of the cyclic GC and collects young objects less often.
- The batch goal is out of reach on top of the library as it is: its own parsing, validation,
  encoding and SQLite insert (the CPU figures above; the insert keeps six indexes, the target
  rows, the trigram text index and the Merkle tree) allow a fraction of 100,000 events/s per
  core. The service adds little on top (the "HTTP + service" row): a large body is parsed,
  validated and encoded once, on an ingest thread (never twice, never on the event loop), and
  its rows join the loop's group commit. `--workers N` runs N processes on the one file; their
  commits queue on SQLite's write lock (busy timeout), none fails.
- The full answer to a batch (1,000 stored events as JSON) costs `Event.to_dict()` per event;
  clients that do not need the events back send `Prefer: return=minimal` (the Python client
  does whenever every event names its workspace) and get `{"count": n}` with
  `Preference-Applied: return=minimal`, plus `kept` (index and stored copy) for any event whose
  uid was already stored.
"""


if __name__ == "__main__":
    main()
