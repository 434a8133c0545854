"""Streaming export of 1,000,000 events: the server's memory stays flat."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from auditbird.codec import dumps
from auditbird.stores.base import Row
from auditbird.stores.sqlite import SQLiteStore
from tests.plugins.service import LiveServer, start_server

pytestmark = pytest.mark.slow  # seeds and exports 1,000,000 events: minutes on 2 cores

N = 1_000_000
BATCH = 50_000


def _seed(path: Path) -> None:
    """Rows written through the library's store in big batches (fast; no HTTP, no validation)."""
    store = SQLiteStore(path, synchronous="OFF")
    ts = 1_700_000_000_000
    actor = dumps({"id": "u1", "name": "exporter"})
    targets = "[]"  # no target rows: seeding stays quick
    for start in range(0, N, BATCH):
        store.append(
            [
                Row(
                    f"{ts + i:016d}-{i:08d}",
                    "big",
                    f"monitor:{i % 100}",
                    "monitor.down",
                    actor,
                    targets,
                    dumps({"region": "gru", "statusCode": 500, "n": i}),
                    ts + i,
                    1,
                )
                for i in range(start, start + BATCH)
            ]
        )
    store.close()


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    directory = tmp_path_factory.mktemp("export1m")
    _seed(directory / "service.db")
    server = start_server(directory)
    yield server
    server.stop()


@pytest.mark.timeout(600)
def test_exporting_a_million_events_keeps_server_memory_flat(big_server: LiveServer) -> None:
    key = big_server.mint("big", "read")
    process = psutil.Process(big_server.pid)
    baseline = process.memory_info().rss
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(process.memory_info().rss)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    count, first, last = 0, None, None
    started = time.perf_counter()
    try:
        with httpx.stream(
            "GET",
            f"{big_server.url}/v1/export",
            params={"format": "ndjson"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=300,
        ) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if not line:
                    continue
                count += 1
                if first is None:
                    first = json.loads(line)
                last = line
    finally:
        done.set()
        sampler.join()
    elapsed = time.perf_counter() - started
    assert count == N
    assert first is not None and first["metadata"]["n"] == N - 1  # newest first
    assert last is not None and json.loads(last)["metadata"]["n"] == 0
    peak = max(samples)
    growth = peak - baseline
    print(
        f"\nexported {N:,} events in {elapsed:.1f}s; server RSS {baseline >> 20} MiB -> peak {peak >> 20} MiB"
    )
    # The whole export as text is ~230 MB; a flat stream stays within a few pages of it.
    assert growth < 80 * 1024 * 1024, f"RSS grew by {growth >> 20} MiB"
