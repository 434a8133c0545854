"""Retention ages events by their timestamp, which the writer chooses: the service refuses one
dated more than an hour ahead of its clock (it would outlive every retention period). Past
timestamps stay accepted (backfill), and expire at the next retention run like any old event."""

from __future__ import annotations

import time

from auditbird.service.event_time import MAX_AHEAD_MS

from .plugins.service import LiveServer

DAY = 86_400_000


def test_a_timestamp_far_ahead_is_refused_naming_it(live_server: LiveServer) -> None:
    key = live_server.mint("time-ahead", "write")
    now = int(time.time() * 1000)
    with live_server.client(key) as c:
        r = c.post("/v1/events", json={"id": "m:1", "action": "monitor.down", "timestamp": now + 365 * DAY})
        assert r.status_code == 422, r.text
        (problem,) = r.json()["errors"]
        assert problem["loc"] == "timestamp" and "ahead of the server's clock" in problem["msg"]
        batch = [
            {"id": "m:2", "action": "monitor.down", "timestamp": now},
            {"id": "m:3", "action": "monitor.down", "timestamp": now + MAX_AHEAD_MS + 60_000},
        ]
        r = c.post("/v1/events", json=batch)
        assert r.status_code == 422 and [e["index"] for e in r.json()["errors"]] == [1]
    with live_server.client(live_server.mint("time-ahead", "read")) as c:
        assert c.get("/v1/events").json()["data"] == []  # nothing of either request stored


def test_clock_skew_and_the_past_are_accepted(live_server: LiveServer) -> None:
    key = live_server.mint("time-ok", "write")
    now = int(time.time() * 1000)
    with live_server.client(key) as c:
        for ts in (now + 10 * 60_000, now - 3650 * DAY, 0):
            r = c.post("/v1/events", json={"id": f"m:{ts}", "action": "monitor.down", "timestamp": ts})
            assert r.status_code == 201, r.text
            assert r.json()["timestamp"] == ts
