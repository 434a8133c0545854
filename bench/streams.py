"""Issue 16's benchmark: log-stream delivery throughput, and commit-to-receipt lag at a
sustained 1,000 events/s, to a webhook receiver (loopback HTTP), to rsyslog (TCP) and to an
OTLP/HTTP logs receiver (JSON).

- throughput: 20,000 events committed first, then one stream delivers them all (catch-up);
- lag: a writer commits 10 events every 10 ms for ``--seconds``; for each event, the time from
  ``publish_many`` returning to the receiver having it (the HTTP handler's clock; rsyslog's
  ``timegenerated``, microseconds), p50 and p99.

    .venv/bin/python -m bench.streams [--seconds 20] [--events 20000] [--only otlp]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from auditbird import AuditLog
from auditbird.streams import StreamRegistry, StreamRunner, new_secret

from .machine import describe, pct


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """Webhook receiver: uid -> first receipt time (time.time())."""

    def __init__(self) -> None:
        self.port = free_port()
        self.seen: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as any production receiver

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                now = time.time()
                if "resourceLogs" in body:  # OTLP: the event is each log record's body
                    data = [
                        json.loads(record["body"]["stringValue"])
                        for resource in body["resourceLogs"]
                        for scope in resource["scopeLogs"]
                        for record in scope["logRecords"]
                    ]
                else:
                    data = body["data"] if isinstance(body["data"], list) else [body["data"]]
                for event in data:
                    receiver.seen.setdefault(event["uid"], now)
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Rsyslog:
    def __init__(self, work: Path) -> None:
        exe = shutil.which("rsyslogd") or shutil.which("rsyslogd", path="/usr/sbin")
        if exe is None:
            raise SystemExit("rsyslogd is missing: run scripts/test-deps.d/70-rsyslog.sh")
        self.port = free_port()
        self.out = work / "received.log"
        conf = work / "rsyslog.conf"
        conf.write_text(
            f'global(workDirectory="{work}" maxMessageSize="64k")\n'
            'module(load="imtcp")\n'
            f'input(type="imtcp" port="{self.port}" ruleset="in")\n'
            'template(name="t" type="string" string="%timegenerated:::date-rfc3339% %structured-data%\\n")\n'
            f'ruleset(name="in") {{ action(type="omfile" file="{self.out}" template="t") }}\n'
        )
        self.proc = subprocess.Popen([exe, "-n", "-f", str(conf), "-i", str(work / "pid")])
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("rsyslogd did not start")

    def seen(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if not self.out.exists():
            return out
        for line in self.out.read_text().splitlines():
            stamp, _, sd = line.partition(" ")
            if 'uid="' in sd:
                uid = sd.split('uid="', 1)[1].split('"', 1)[0]
                out.setdefault(uid, datetime.fromisoformat(stamp).timestamp())
        return out

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


def setup(work: Path, kind: str, batched: bool, phase: str) -> tuple[str, Any]:
    store = f"sqlite:///{work / f'{kind}-{batched}-{phase}.db'}"
    with StreamRegistry.for_store(store) as reg:
        if kind == "webhook":
            receiver: Any = Receiver()
            opts = {"url": f"http://127.0.0.1:{receiver.port}/", "secret": new_secret(), "batched": batched}
        elif kind == "otlp":
            receiver = Receiver()
            opts = {"url": f"http://127.0.0.1:{receiver.port}"}
        else:
            receiver = Rsyslog(Path(tempfile.mkdtemp(dir=work)))
            opts = {"host": "127.0.0.1", "port": receiver.port}
        reg.add("bench", workspace="", kind=kind, options=opts)
    return store, receiver


def seen_of(receiver: Any) -> dict[str, float]:
    return receiver.seen() if isinstance(receiver, Rsyslog) else receiver.seen


def throughput(work: Path, kind: str, batched: bool, n: int) -> float:
    store, receiver = setup(work, kind, batched, "throughput")
    with AuditLog(store) as log:
        for start in range(0, n, 1_000):
            log.publish_many(
                [{"id": f"m:{i % 50}", "action": "monitor.down"} for i in range(start, start + 1_000)]
            )
    runner = StreamRunner(store, batch=500)
    t0 = time.perf_counter()
    runner.run()
    while len(seen_of(receiver)) < n:
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    runner.close()
    receiver.close()
    return n / elapsed


def lag(work: Path, kind: str, batched: bool, seconds: float) -> tuple[float, float, int]:
    store, receiver = setup(work, kind, batched, "lag")
    stop = threading.Event()
    runner = StreamRunner(store, batch=500, stop=stop)
    thread = threading.Thread(target=runner.run, kwargs={"follow": True, "poll_interval": 0.01})
    thread.start()
    committed: dict[str, float] = {}
    with AuditLog(store) as log:
        start = time.perf_counter()
        tick = 0
        while time.perf_counter() - start < seconds:
            events = log.publish_many([{"id": f"m:{i}", "action": "monitor.down"} for i in range(10)])
            now = time.time()
            committed.update((e.uid, now) for e in events)
            tick += 1
            time.sleep(max(0.0, start + tick * 0.01 - time.perf_counter()))
        rate = len(committed) / (time.perf_counter() - start)
    deadline = time.time() + 60
    while len(seen_of(receiver)) < len(committed) and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join()
    runner.close()
    seen = seen_of(receiver)
    receiver.close()
    lags = [(seen[u] - t) * 1000 for u, t in committed.items() if u in seen]
    assert len(lags) == len(committed), f"{len(committed) - len(lags)} events never arrived"
    return pct(lags, 0.5), pct(lags, 0.99), int(rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--only", choices=["webhook", "syslog", "otlp"], help="one kind of sink")
    args = parser.parse_args()
    print(describe())
    print("| sink | throughput (events/s) | offered (events/s) | lag p50 (ms) | lag p99 (ms) |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for kind, batched, label in (
            ("webhook", False, "webhook, one request per event"),
            ("webhook", True, "webhook, batched"),
            ("syslog", False, "syslog (rsyslog, TCP)"),
            ("otlp", True, "OTLP/HTTP logs (JSON, one request per batch)"),
        ):
            if args.only and kind != args.only:
                continue
            rate = throughput(work, kind, batched, args.events)
            p50, p99, offered = lag(work, kind, batched, args.seconds)
            print(f"| {label} | {rate:,.0f} | {offered:,} | {p50:.1f} | {p99:.1f} |", flush=True)


if __name__ == "__main__":
    main()
