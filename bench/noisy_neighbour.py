"""Noisy neighbours: tenant B's publish latency while tenant A tails and searches, vs. idle.

    python -m bench.noisy_neighbour [--seconds 10] [--events 200000] [--tails 20] [--searchers 2]

Starts a real ``auditbird serve`` over a fresh SQLite file holding ``--events`` events of tenant
A, then measures tenant B publishing single events (4 keep-alive connections) twice: with the
server otherwise idle, and while tenant A keeps ``--tails`` live tails (``/v1/stream``) open and
``--searchers`` connections run `text` searches back to back (one for a word no event holds,
one for a word in a few events: the searches a full scan makes slowest). The per-key tail cap
is raised to ``--tails`` for the run, so that all of A's tails come from one read key, as in
issue #10 (``--default-caps`` keeps the server's default of 5 a key). Prints a
``## Noisy neighbours`` section for bench/RESULTS.md (``--write`` puts it there).

To compare two versions of the code, run it with ``PYTHONPATH`` pointing at each ``src``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.machine import describe, pct
from bench.service_load import Connection, _free_port, _request

RESULTS = Path(__file__).with_name("RESULTS.md")
EVENT_B = b'{"id":"order:1","action":"order.paid","metadata":{"amount":12}}'
SEARCHES = ("no-event-holds-this", "rare-word")


def fill(db: Path, events: int) -> None:
    """Tenant A's history, written through the library (fast: batches, no HTTP)."""
    from auditbird import AuditLog

    rnd = random.Random(7)
    now = int(time.time() * 1000)
    with AuditLog(f"sqlite:///{db}?synchronous=NORMAL", workspace="A") as log:
        for start in range(0, events, 5_000):
            log.publish_many(
                [
                    {
                        "id": f"monitor:{rnd.randrange(500)}",
                        "action": rnd.choice(["monitor.down", "monitor.recovered", "incident.created"]),
                        "timestamp": now - (events - i) * 10,
                        "metadata": {
                            "region": rnd.choice(["gru", "ams", "iad", "fra"]),
                            "message": "rare-word"
                            if i % 10_000 == 0
                            else f"timeout after {rnd.randrange(30)}s",
                        },
                    }
                    for i in range(start, min(events, start + 5_000))
                ]
            )


def start(directory: Path, tails: int | None) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    from auditbird.service.keys import KeyStore

    db, keys_path = directory / "noisy.db", directory / "noisy.keys.db"
    keys = KeyStore(keys_path)
    minted = {
        "a_read": keys.create(workspace="A", scope="read").secret,
        "b_write": keys.create(workspace="B", scope="write").secret,
    }
    keys.close()
    port = _free_port()
    env = {**os.environ, "AUDITBIRD_RATE_LIMIT": "0"}
    if tails is not None:
        env["AUDITBIRD_MAX_TAILS_PER_KEY"] = str(tails)
    cmd = [sys.executable, "-c", "from auditbird.cli import main; main()", "--store", f"sqlite:///{db}"]
    cmd += ["serve", "--port", str(port), "--keys", str(keys_path), "--log-level", "warning"]
    process = subprocess.Popen(cmd, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url, minted
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


async def publish_b(port: int, key: str, seconds: float) -> dict[str, Any]:
    request = _request(port, key, EVENT_B, True)
    conns = [await Connection.open(port) for _ in range(4)]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(conn: Connection) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            if await conn.call(request) != 201:
                errors += 1
            latencies.append(time.perf_counter() - t)

    await asyncio.gather(*(worker(c) for c in conns))
    for c in conns:
        c.close()
    return {
        "requests": len(latencies),
        "p50_ms": pct(latencies, 0.50) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        "errors": errors,
    }


async def noisy_a(url: str, key: str, tails: int, searchers: int, stop: asyncio.Event) -> dict[str, Any]:
    """A's tails and searches until ``stop``; how many tails were accepted, searches answered."""
    headers = {"Authorization": f"Bearer {key}"}
    client = httpx.AsyncClient(base_url=url, headers=headers, timeout=120)
    accepted = 0
    searches: list[float] = []

    async def tail() -> None:
        nonlocal accepted
        async with client.stream("GET", "/v1/stream", params={"since": "1h"}) as r:
            if r.status_code != 200:
                return
            accepted += 1
            async for _ in r.aiter_lines():
                if stop.is_set():
                    return

    async def search(word: str) -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await client.get("/v1/events", params={"text": word, "limit": 50})
            searches.append(time.perf_counter() - t)

    tasks = [asyncio.create_task(tail()) for _ in range(tails)]
    tasks += [asyncio.create_task(search(SEARCHES[i % len(SEARCHES)])) for i in range(searchers)]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()
    return {
        "tails": accepted,
        "searches": len(searches),
        "search_p50_ms": pct(searches, 0.5) * 1000 if searches else 0.0,
    }


async def measure(url: str, keys: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    port = int(url.rsplit(":", 1)[1])
    await publish_b(port, keys["b_write"], 1)  # warm up
    idle = await publish_b(port, keys["b_write"], args.seconds)
    stop = asyncio.Event()
    neighbour = asyncio.create_task(noisy_a(url, keys["a_read"], args.tails, args.searchers, stop))
    await asyncio.sleep(2)  # the tails are open and polling
    busy = await publish_b(port, keys["b_write"], args.seconds)
    stop.set()
    return {"idle": idle, "busy": busy, "a": await neighbour}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--tails", type=int, default=20)
    parser.add_argument("--searchers", type=int, default=2)
    parser.add_argument("--default-caps", action="store_true", help="keep the per-key tail cap")
    parser.add_argument("--write", action="store_true", help="append the section to bench/RESULTS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="auditbird-noisy-") as tmp:
        directory = Path(tmp)
        fill(directory / "noisy.db", args.events)
        process, url, keys = start(directory, None if args.default_caps else args.tails)
        try:
            result = asyncio.run(measure(url, keys, args))
        finally:
            process.terminate()
            process.wait(timeout=30)
    idle, busy, a = result["idle"], result["busy"], result["a"]
    lines = [
        "## Noisy neighbours",
        "",
        f"`python -m bench.noisy_neighbour --seconds {args.seconds:g} --events {args.events}"
        f" --tails {args.tails} --searchers {args.searchers}{' --default-caps' if args.default_caps else ''}`"
        f" · {describe()}",
        "",
        f"Tenant B publishes single events (4 connections) into a server whose SQLite file holds"
        f" {args.events:,} events of tenant A; then again while A keeps {a['tails']} live tails open"
        f" ({args.tails} asked for)"
        f" and {args.searchers} connections search text back to back ({a['searches']:,} searches,"
        f" p50 {a['search_p50_ms']:.0f} ms).",
        "",
        "| tenant B's publishes | requests | p50 ms | p99 ms | max ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("server idle", idle), ("A tailing and searching", busy)):
        lines.append(
            f"| {name} | {r['requests']:,} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.0f} "
            f"| {r['errors']} |"
        )
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.write:
        RESULTS.write_text(RESULTS.read_text().rstrip("\n") + "\n\n" + text)


if __name__ == "__main__":
    main()
