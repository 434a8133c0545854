"""Server-side ingest rate of the local Tinybird server: ``POST /v0/events`` rows/s.

A server subprocess (``auditbird tinybird local``) on loopback; the client posts pre-built
10k-row NDJSON batches of typical audit rows (the 9 row columns, actor/targets/metadata as JSON
strings, about one in five rows with null metadata) with ``wait=true`` over one keep-alive
connection, one request at a time, so the wall time per request is the server's time plus
loopback. Bodies are built (and gzipped) before the clock starts. Reported: rows/s over all
timed requests and the median request, plain and gzip.

``--src DIR`` runs the server from another source tree (e.g. an export of an earlier commit), so
two versions can be measured side by side in one session on the same machine:

    .venv/bin/python -m bench.tinybird_server_ingest [--rows 10000] [--batches 20] [--src DIR ...]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
import uuid
from pathlib import Path

import httpx

from .tinybird_ingest import local_server

SRC = Path(__file__).resolve().parents[1] / "src"


def body(rows: int, batch: int, workspace: str) -> bytes:
    t0 = 1_700_000_000_000 + batch * rows
    lines = []
    for i in range(rows):
        n = batch * rows + i
        row = {
            "uid": f"0190a1b2-{n >> 16 & 0xFFFF:04x}-7{n & 0xFFF:03x}-8000-{uuid.uuid4().hex[:12]}",
            "workspace": workspace,
            "id": f"monitor:{n % 1000}",
            "action": ("monitor.down", "monitor.up", "incident.create")[n % 3],
            "actor": json.dumps({"id": str(n % 50), "name": "checker"}, separators=(",", ":")),
            "targets": json.dumps([{"id": str(n % 1000), "type": "monitor"}], separators=(",", ":")),
            "metadata": None
            if n % 5 == 0
            else json.dumps(
                {"region": "gru", "statusCode": 400 + n % 100, "message": "timeout"}, separators=(",", ":")
            ),
            "timestamp": t0 + i,
            "version": 1,
        }
        lines.append(json.dumps(row, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def measure(url: str, token: str, bodies: list[bytes], rows: int, compress: bool) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"}
    if compress:
        headers["Content-Encoding"] = "gzip"
        bodies = [gzip.compress(b, compresslevel=1, mtime=0) for b in bodies]
    times = []
    with httpx.Client(headers=headers, timeout=120) as client:
        for content in bodies:
            start = time.perf_counter()
            resp = client.post(
                f"{url}/v0/events", params={"name": "audit_log", "wait": "true"}, content=content
            )
            times.append(time.perf_counter() - start)
            assert resp.status_code == 200, resp.text
            assert resp.json() == {"successful_rows": rows, "quarantined_rows": 0}, resp.text
    return {
        "rows_per_s": rows * len(times) / sum(times),
        "median_ms": statistics.median(times) * 1000,
        "best_rows_per_s": rows / min(times),
        "body_kb": sum(len(b) for b in bodies) / len(bodies) / 1024,
    }


def run(src: Path, rows: int, batches: int) -> dict[str, dict[str, float]]:
    token = f"p.bench-{uuid.uuid4().hex}"
    out = {}
    with local_server(token, src) as url:
        warm = [body(rows, 10_000 + b, "warmup") for b in range(3)]
        measure(url, token, warm, rows, False)
        for compress in (False, True):
            ws = f"w-{uuid.uuid4().hex[:8]}"
            bodies = [body(rows, b, ws) for b in range(batches)]
            out["gzip" if compress else "plain"] = measure(url, token, bodies, rows, compress)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows per request")
    parser.add_argument("--batches", type=int, default=20, help="timed requests per mode")
    parser.add_argument("--src", type=Path, action="append", help="source tree(s) to run the server from")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the source trees this many times")
    args = parser.parse_args(argv)
    srcs = args.src or [SRC]
    print(f"POST /v0/events, {args.rows}-row NDJSON batches, wait=true, {args.batches} timed requests each")
    for round_ in range(args.rounds):
        for src in srcs:
            result = run(src, args.rows, args.batches)
            for mode, r in result.items():
                print(
                    f"  [{round_}] {str(src):<40} {mode:<5} {r['rows_per_s']:>9,.0f} rows/s "
                    f"(median {r['median_ms']:6.1f} ms/request, best {r['best_rows_per_s']:>9,.0f} rows/s, "
                    f"body {r['body_kb']:,.0f} KiB)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
