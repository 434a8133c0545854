"""Issue 6's benchmarks: projection rebuild against `eventsourcing`, and relay throughput.

One run, side by side, the same durability (WAL, synchronous=FULL) on both sides:
- rebuild a monitor's state from a 100,000-event stream: ``log.project`` (no snapshot) vs
  ``eventsourcing`` ``repository.get`` of an aggregate with the same fields and handlers;
- the same with a snapshot at 99,000 events and a 1,000-event tail, on both sides;
- relay throughput: events/s from one SQLite file into another (and into the local Tinybird
  server with ``--tinybird``, which starts one).

    .venv/bin/python -m bench.projection [--events 100000] [--runs 5] [--tinybird]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from auditbird import AuditLog
from auditbird.catalog.openstatus_projections import MonitorState
from auditbird.relay import Relay

from .machine import describe, median

REGIONS = ["gru", "ams", "iad"]
SETTINGS = {"name": "api", "url": "https://api.example.com", "periodicity": "1m", "regions": REGIONS}
T0 = 1_767_225_600_000


def check(i: int) -> tuple[str, dict[str, Any]]:
    """The i-th check event of the stream: down twice, then recovered twice, per region."""
    region = REGIONS[i % 3]
    if i % 4 < 2:
        return "monitor.down", {"region": region, "statusCode": 500, "message": "timeout"}
    return "monitor.recovered", {"region": region, "statusCode": 200, "latency": 120}


def ours(i: int) -> dict[str, Any]:
    if i == 0:
        meta: dict[str, Any] = {"before": None, "after": SETTINGS, "changed": sorted(SETTINGS)}
        return {"id": "monitor:1", "action": "monitor.created", "timestamp": T0, "metadata": meta}
    action, meta = check(i)
    return {
        "id": "monitor:1",
        "action": action,
        "actor": {"id": "", "name": "checker"},
        "targets": [{"id": "1", "type": "monitor"}],
        "timestamp": T0 + i * 1000,
        "metadata": meta,
    }


class BenchMonitor(MonitorState):
    """MonitorState, saving snapshots only when told (so every timed run replays the same tail)."""

    snapshot_every = 10**12


class EsMonitor(Aggregate):
    """The same fields and the same handler bodies as MonitorState, as an eventsourcing aggregate."""

    @event("Created")
    def __init__(self, stream: str, settings: dict[str, Any], timestamp: int) -> None:
        self.stream = stream
        self.name: str | None = None
        self.url: str | None = None
        self.periodicity: str | None = None
        self.regions: list[str] = []
        self.settings: dict[str, Any] = {}
        self.status = "unknown"
        self.paused = False
        self.deleted = False
        self.failing_regions: list[str] = []
        self.last_status_code: int | None = None
        self.last_message: str | None = None
        self.failures = 0
        self.recoveries = 0
        self.open_incident = False
        self.incidents = 0
        self.created_at: int | None = timestamp
        self.updated_at: int | None = timestamp
        self._configure(settings)
        self._settle()

    def _settle(self) -> None:
        if self.deleted:
            self.status = "deleted"
        elif self.paused:
            self.status = "paused"
        elif not self.failing_regions:
            self.status = "active" if self.created_at is not None else "unknown"
        elif not self.regions or set(self.regions) <= set(self.failing_regions):
            self.status = "down"
        else:
            self.status = "degraded"

    def _configure(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.name = settings.get("name", self.name)
        self.url = settings.get("url", self.url)
        self.periodicity = settings.get("periodicity", self.periodicity)
        self.regions = list(settings.get("regions", self.regions))
        if "active" in settings:
            self.paused = not settings["active"]

    @event("Down")
    def down(self, region: str, statusCode: int, message: str | None) -> None:  # noqa: N803
        if region not in self.failing_regions:
            self.failing_regions = sorted([*self.failing_regions, region])
        self.last_status_code = statusCode
        self.last_message = message
        self.failures += 1
        self._settle()

    @event("Recovered")
    def recovered(self, region: str, statusCode: int, latency: int | None) -> None:  # noqa: N803
        if region in self.failing_regions:
            self.failing_regions = [r for r in self.failing_regions if r != region]
            self.recoveries += 1
        self.last_status_code = statusCode
        self.last_message = None
        self._settle()


def es_app(path: Path, snapshots: bool) -> Application:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    if snapshots:
        env["IS_SNAPSHOTTING_ENABLED"] = "y"
    return Application(env=env)


def es_append(monitor: EsMonitor, start: int, stop: int) -> None:
    for i in range(start, stop):
        action, meta = check(i)
        if action == "monitor.down":
            monitor.down(meta["region"], meta["statusCode"], meta["message"])
        else:
            monitor.recovered(meta["region"], meta["statusCode"], meta["latency"])


def interleaved(ours_fn: Any, theirs_fn: Any, runs: int) -> tuple[float, float, Any, Any]:
    """Median seconds of each, run alternately so a busy machine slows both alike."""
    ours_fn(), theirs_fn()  # warm-up: page cache, imports, pydantic's first validators
    a, b = [], []
    for _ in range(runs):
        t = time.perf_counter()
        ours_result = ours_fn()
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        theirs_result = theirs_fn()
        b.append(time.perf_counter() - t)
    return median(a), median(b), ours_result, theirs_result


def bench_projection(tmp: Path, n: int, runs: int) -> list[str]:
    tail = min(1_000, n // 10)
    # auditbird: the stream, a snapshot at n - tail, then the tail.
    log = AuditLog(f"sqlite:///{tmp / 'ours.db'}")
    for j in range(0, n - tail, 5_000):
        log.publish_many([ours(i) for i in range(j, min(j + 5_000, n - tail))])
    log.snapshot("monitor:1", BenchMonitor)
    log.publish_many([ours(i) for i in range(n - tail, n)])

    # eventsourcing: the same stream in its SQLite store, a snapshot at n - tail, then the tail.
    app = es_app(tmp / "es.db", snapshots=True)
    monitor = EsMonitor("monitor:1", SETTINGS, T0)
    es_append(monitor, 1, n - tail)
    app.save(monitor)
    app.take_snapshot(monitor.id)
    es_append(monitor, n - tail, n)
    app.save(monitor)
    plain = es_app(tmp / "es.db", snapshots=False)
    full_s, es_full_s, ours_state, es_state = interleaved(
        lambda: log.project("monitor:1", BenchMonitor, snapshots=False),
        lambda: plain.repository.get(monitor.id),
        runs,
    )
    snap_s, es_snap_s, ours_snap, es_snap = interleaved(
        lambda: log.project("monitor:1", BenchMonitor), lambda: app.repository.get(monitor.id), runs
    )
    assert ours_state.revision == n and ours_snap.model_dump() == ours_state.model_dump()
    assert es_state.version == n and es_snap.version == n
    for name in ("status", "failing_regions", "failures", "recoveries", "last_status_code"):
        assert getattr(es_state, name) == getattr(ours_state, name), name
    log.close()

    def row(what: str, a: float, b: float, replayed: int) -> str:
        ours_cell = f"{a * 1000:,.1f} ms ({replayed / a:,.0f} events/s)"
        es_cell = f"{b * 1000:,.1f} ms ({replayed / b:,.0f} events/s)"
        return f"| {what} | {ours_cell} | {es_cell} | **{b / a:.1f}×** |"

    return [
        f"Projection rebuild, one {n:,}-event monitor stream, median of {runs} runs, alternating:",
        "",
        "| rebuild | auditbird `log.project` | eventsourcing `repository.get` | auditbird faster by |",
        "|---|---|---|---|",
        row("from the first event", full_s, es_full_s, n),
        row(f"from a snapshot at {n - tail:,} ({tail:,}-event tail)", snap_s, es_snap_s, tail),
    ]


def bench_relay(tmp: Path, n: int, tinybird: bool) -> list[str]:
    source = tmp / "app.db"
    with AuditLog(f"sqlite:///{source}") as log:
        for j in range(0, n, 5_000):
            log.publish_many([{**ours(i), "id": f"monitor:{i % 100}"} for i in range(j, min(j + 5_000, n))])
    lines = ["", f"Relay throughput, {n:,} committed events (100 streams), batches of 1,000:", ""]
    lines += ["| from → to | events/s | wall |", "|---|---|---|"]
    targets = [("SQLite → SQLite (synchronous=FULL)", f"sqlite:///{tmp / 'dest.db'}")]
    server = None
    if tinybird:
        server, url = start_tinybird(tmp)
        targets.append(("SQLite → local Tinybird server (Events API, wait=true)", url))
    try:
        for label, url in targets:
            with Relay(f"sqlite:///{source}", url, batch=1_000) as relay:
                t = time.perf_counter()
                shipped = relay.run()
                wall = time.perf_counter() - t
            assert shipped == n, (label, shipped)
            lines.append(f"| {label} | {n / wall:,.0f} | {wall:.2f} s |")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
    return lines


def start_tinybird(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = "bench-token"
    cmd = [sys.executable, "-m", "auditbird", "tinybird", "local", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--token", token, "--data", str(tmp / "tb")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    time.sleep(1.0)
    return proc, f"tinybird+http://{token}@127.0.0.1:{port}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--relay-events", type=int, default=100_000)
    parser.add_argument("--tinybird", action="store_true", help="also relay into a local Tinybird server")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="auditbird-bench-") as d:
        tmp = Path(d)
        lines = [f"Machine: {describe()}", ""]
        lines += bench_projection(tmp, args.events, args.runs)
        lines += bench_relay(tmp, args.relay_events, args.tinybird)
    print("\n".join(lines))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
