"""kill -9 the stream runner mid-batch: every event still reaches the webhook receiver and
rsyslog at least once, in commit order per stream, and no stream ever skips an event."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from auditbird import AuditLog
from auditbird.streams import StreamRegistry, new_secret

from .live_server import EXE
from .streams_support import Rsyslog, WebhookReceiver, first_occurrences, wait_for

pytestmark = pytest.mark.slow


def start_runner(store: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            EXE,
            "--store",
            store,
            "--workspace",
            "acme",
            "streams",
            "run",
            "--follow",
            "--batch",
            "25",
            "--poll-interval",
            "0.05",
            "--retry-base",
            "0.01",
            "--retry-cap",
            "0.1",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_kill_9_mid_batch_loses_and_skips_nothing(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    # A slow receiver (one request per event) so the kill lands inside a batch.
    hook = WebhookReceiver(delay=0.01).start()
    rsyslog = Rsyslog(tmp_path / "rsyslog").start()
    secret = new_secret()
    with StreamRegistry.for_store(store) as reg:
        reg.add("hook", workspace="acme", kind="webhook", options={"url": hook.url, "secret": secret})
        reg.add("siem", workspace="acme", kind="syslog", options={"host": "127.0.0.1", "port": rsyslog.port})

    committed: list[str] = []
    done = threading.Event()

    def writer() -> None:  # commits keep arriving while the runner is killed and restarted
        with AuditLog(store, workspace="acme") as log:
            for i in range(30):
                batch = log.publish_many(
                    [{"id": f"monitor:{j % 5}", "action": "monitor.down"} for j in range(20)]
                )
                committed.extend(e.uid for e in batch)
                if i % 10 == 9:
                    done.wait(0.3)
        done.set()

    proc = start_runner(store, tmp_path / "runner.log")
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for kill_at in (60, 250):
            wait_for(lambda n=kill_at: len(hook.requests) >= n, 120, f"{kill_at} webhook deliveries")
            kill9(proc)  # mid-batch: batches are 25 events, one request each
            proc = start_runner(store, tmp_path / "runner.log")
        thread.join()
        assert len(committed) == 600
        wait_for(lambda: set(hook.uids()) >= set(committed), 180, "every event at the webhook")
        wait_for(lambda: set(rsyslog.uids()) >= set(committed), 180, "every event at rsyslog")
    finally:
        done.set()
        thread.join()
        if proc.poll() is None:
            kill9(proc)
        hook.stop()
        rsyslog.stop()
    assert first_occurrences(hook.uids()) == committed
    assert first_occurrences(rsyslog.uids()) == committed
    # At least once: the kills made the in-doubt batch arrive twice, never a gap.
    assert len(hook.uids()) >= len(committed)
