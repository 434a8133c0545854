"""Limits (413, 429), idempotency, and store failures (503, nothing half-written)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from auditbird import StoreUnavailable
from auditbird.query import Query
from auditbird.service import KeyStore, ServiceLimits, create_app
from auditbird.stores.base import Row
from auditbird.stores.sqlite import SQLiteStore
from tests.plugins.service import LiveServer

MiB = 1024 * 1024


@pytest.fixture
def admin(live_server: LiveServer) -> str:
    return live_server.mint(f"lim-{uuid.uuid4().hex[:8]}", "admin")


def test_body_over_the_request_limit_is_413(live_server: LiveServer, admin: str) -> None:
    one = json.dumps({"id": "big:1", "action": "a.b", "metadata": {"s": "x" * 400}})
    body = "[" + ",".join([one] * (10 * MiB // len(one) + 10)) + "]"
    with live_server.client(admin) as c:
        r = c.post("/v1/events", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["status"] == 413
        # Chunked (no Content-Length): refused while streaming, not after buffering it all.
        chunks = (body[i : i + MiB].encode() for i in range(0, len(body), MiB))
        r = c.post("/v1/events", content=chunks, headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert c.get("/v1/events", params={"event_id": "big:1"}).json()["data"] == []


def test_event_over_the_event_limit_is_413_naming_it(live_server: LiveServer, admin: str) -> None:
    small = {"id": "ev:1", "action": "a.b"}
    huge = {"id": "ev:2", "action": "a.b", "metadata": {"blob": "y" * (MiB + 10)}}
    with live_server.client(admin) as c:
        r = c.post("/v1/events", json=[small, huge])
        assert r.status_code == 413
        assert [e["index"] for e in r.json()["errors"]] == [1]
        assert c.get("/v1/events", params={"event_id": "ev:1"}).json()["data"] == []


def test_a_key_over_its_rate_gets_429_with_retry_after(live_server: LiveServer) -> None:
    key = live_server.mint(f"rate-{uuid.uuid4().hex[:8]}", "admin", rate=2)
    with live_server.client(key) as c:
        statuses = [c.get("/v1/actions") for _ in range(12)]
    limited = [r for r in statuses if r.status_code == 429]
    assert statuses[0].status_code == 200 and len(limited) >= 6
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].headers["content-type"] == "application/problem+json"
    with live_server.client(live_server.mint("rate-other", "admin", rate=2)) as other:
        assert other.get("/v1/actions").status_code == 200  # limits are per key


def test_idempotency_key_retry_stores_once_and_answers_the_same(live_server: LiveServer, admin: str) -> None:
    body = [{"id": "pay:1", "action": "payment.made"}, {"id": "pay:1", "action": "payment.logged"}]
    headers = {"Idempotency-Key": f"req-{uuid.uuid4()}"}
    with live_server.client(admin) as c:
        first = c.post("/v1/events", json=body, headers=headers)
        second = c.post("/v1/events", json=body, headers=headers)
        assert first.status_code == second.status_code == 201
        assert first.json() == second.json()
        assert len(c.get("/v1/events", params={"event_id": "pay:1"}).json()["data"]) == 2
        other = c.post("/v1/events", json=body[:1], headers=headers)
        assert other.status_code == 422 and other.json()["errors"][0]["loc"] == "Idempotency-Key"


def test_concurrent_retries_with_one_idempotency_key_store_once(live_server: LiveServer, admin: str) -> None:
    headers = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    body = {"id": "race:1", "action": "a.b"}

    def post(_: int) -> dict:
        with live_server.client(admin) as c:
            r = c.post("/v1/events", json=body, headers=headers)
            assert r.status_code == 201
            return r.json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    assert all(a == answers[0] for a in answers)
    with live_server.client(admin) as c:
        assert len(c.get("/v1/events", params={"event_id": "race:1"}).json()["data"]) == 1


def test_event_uid_makes_a_retry_store_once_and_answer_the_same(live_server: LiveServer, admin: str) -> None:
    event = {"id": "u:1", "action": "a.b", "uid": f"client-{uuid.uuid4()}"}
    with live_server.client(admin) as c:
        first = c.post("/v1/events", json=event).json()
        second = c.post("/v1/events", json=event).json()
        assert first == second  # the stored timestamp, not the retry's
        assert len(c.get("/v1/events", params={"event_id": "u:1"}).json()["data"]) == 1


class FlakyStore(SQLiteStore):
    """SQLite, except that appends fail while ``down`` is set."""

    down = False

    def append(self, rows: Sequence[Row]) -> None:
        if self.down:
            raise StoreUnavailable("disk on fire")
        super().append(rows)


def test_store_failure_is_503_and_nothing_is_half_written(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "flaky.db")
    keys = KeyStore(tmp_path / "flaky.keys.db")
    key = keys.create(workspace="w", scope="admin").secret
    app = create_app(store, keys=keys, limits=ServiceLimits(default_rate=0), metrics_token="m")
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as c:
        FlakyStore.down = True
        try:
            r = c.post("/v1/events", json=[{"id": "f:1", "action": "a.b"}, {"id": "f:2", "action": "a.b"}])
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert r.headers["content-type"] == "application/problem+json"
            scraped = c.get("/metrics", headers={"Authorization": "Bearer m"}).text
            assert "auditbird_store_errors_total 1" in scraped
        finally:
            FlakyStore.down = False
        assert store.query(Query(workspace="w")) == []
        assert c.post("/v1/events", json={"id": "f:3", "action": "a.b"}).status_code == 201
