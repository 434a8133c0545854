"""``auditbird serve --workers 2``: two processes, one SQLite file (WAL), each with its own
group-commit writer. Several clients POST at once (single events, JSON arrays, NDJSON); every
acknowledged event is stored exactly once, positions stay gap-free, a retried request answers
the same, and no request fails because the other process held the write lock."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditbird.service.keys import KeyStore
from tests.live_server import EXE, free_port, stop, wait_until_up

pytestmark = pytest.mark.slow

CLIENTS = 6
ROUNDS = 12  # per client, each round: a single event, a JSON array, an NDJSON batch, a retried POST
BATCH = 25


def _workers(pid: int) -> set[int]:
    """The worker processes uvicorn spawned under ``pid`` (from /proc: no extra dependency;
    multiprocessing's resource tracker, also a child, is not one)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                found.add(int(child))
    return found


def _event(client: int, n: int) -> dict[str, Any]:
    return {
        "uid": str(uuid.uuid4()),
        "id": f"monitor:{client}",
        "action": "monitor.down",
        "actor": {"id": str(client), "name": f"client {client}"},
        "targets": [{"id": str(n % 7), "type": "monitor"}],
        "metadata": {"n": n},
    }


def test_two_workers_on_one_file_store_every_acknowledged_event_once(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    keys = KeyStore(tmp_path / "shared.keys.db")
    token = keys.create(workspace="w", scope="write").secret
    keys.close()
    port = free_port()
    env = {**os.environ, "AUDITBIRD_RATE_LIMIT": "0"}
    env.pop("AUDITBIRD_KEYS", None)
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [EXE, "--store", f"sqlite:///{db}", "serve", "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    acknowledged: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
            for r in range(ROUNDS):
                single = _event(number, r)
                array = [_event(number, r * 100 + i) for i in range(BATCH)]
                ndjson = [_event(number, r * 1000 + i) for i in range(BATCH)]
                answers = [
                    ([single["uid"]], c.post("/v1/events", json=single)),
                    (
                        [e["uid"] for e in array],
                        c.post("/v1/events", json=array, headers={"Prefer": "return=minimal"}),
                    ),
                    (
                        [e["uid"] for e in ndjson],
                        c.post(
                            "/v1/events",
                            content="\n".join(json.dumps(e) for e in ndjson).encode(),
                            headers={"Content-Type": "application/x-ndjson", "Prefer": "return=minimal"},
                        ),
                    ),
                ]
                # A retried request (same Idempotency-Key and body), likely on the other worker:
                # the same answer, nothing stored twice (the keys file is shared too).
                retry_key = f"{number}-{r}"
                body = [_event(number, r * 10_000 + i) for i in range(3)]
                once = c.post("/v1/events", json=body, headers={"Idempotency-Key": retry_key})
                twice = c.post("/v1/events", json=body, headers={"Idempotency-Key": retry_key})
                if (once.status_code, once.content) != (twice.status_code, twice.content):
                    failures.append(f"retry answered differently: {once.text[:100]} / {twice.text[:100]}")
                answers.append(([e["uid"] for e in body], once))
                with lock:
                    for uids, answer in answers:
                        if answer.status_code == 201:
                            acknowledged.extend(uids)
                        else:
                            failures.append(f"{answer.status_code}: {answer.text[:200]}")

    try:
        wait_until_up(f"{base}/healthz", proc)
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        workers = _workers(proc.pid)
        for t in threads:
            t.join()
    finally:
        stop(proc)
        log.close()
    assert len(workers) >= 2, f"serve --workers 2 runs two processes, saw {workers}"
    assert failures == [], f"requests failed under contention: {failures[:5]}"
    assert len(acknowledged) == CLIENTS * ROUNDS * (1 + 2 * BATCH + 3)

    conn = sqlite3.connect(db)
    try:
        stored = conn.execute("SELECT uid, count(*) FROM audit_log GROUP BY workspace, uid").fetchall()
        positions = [p for (p,) in conn.execute("SELECT position FROM audit_log ORDER BY position")]
        targets = conn.execute("SELECT count(*) FROM audit_target").fetchone()[0]
    finally:
        conn.close()
    counts = dict(stored)
    assert sorted(counts) == sorted(acknowledged)  # every acknowledged event, nothing else
    assert set(counts.values()) == {1}  # each stored once
    assert positions == list(range(1, len(acknowledged) + 1))  # gap-free commit order
    assert targets == len(acknowledged)  # each event's target row, written with it
