"""The service's ingest path: each event validated once, large bodies parsed and validated off
the event loop, and NDJSON / arrays with ``Prefer: return=minimal`` answered by count with
nothing lost."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, field_validator

from auditbird import ActionRegistry, AuditLog
from auditbird.query import Query
from auditbird.service import KeyStore, ServiceLimits, create_app
from tests.plugins.service import LiveServer


class Seen:
    """What the metadata validator saw: how often it ran, and whether on an event loop."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.on_loop = 0


SEEN = Seen()


class Probe(BaseModel):
    n: int

    @field_validator("n")
    @classmethod
    def _count(cls, value: int) -> int:
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:  # no loop running in this thread: a worker thread
            on_loop = False
        with SEEN.lock:
            SEEN.calls += 1
            SEEN.on_loop += on_loop
        return value


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, str, Path]]:
    registry = ActionRegistry()
    registry.register("probe.seen", Probe)
    keys = KeyStore(tmp_path / "k.db")
    token = keys.create(workspace="w", scope="write").secret
    db = tmp_path / "a.db"
    app = create_app(f"sqlite:///{db}", keys=keys, registry=registry, limits=ServiceLimits(default_rate=0))
    SEEN.calls = SEEN.on_loop = 0
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, token, db


def _events(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"uid": str(uuid.uuid4()), "id": f"p:{i % 5}", "action": "probe.seen", "metadata": {"n": i}, **extra}
        for i in range(n)
    ]


def _stored(db: Path) -> list[tuple[str, int]]:
    conn = sqlite3.connect(db)
    try:
        return [
            (uid, json.loads(meta)["n"])
            for uid, meta in conn.execute("SELECT uid, metadata FROM audit_log ORDER BY position")
        ]
    finally:
        conn.close()


@pytest.mark.parametrize("count", [1_001, 300])
def test_a_batch_is_validated_once_and_off_the_event_loop(
    app: tuple[TestClient, str, Path], count: int
) -> None:
    client, _, db = app
    r = client.post("/v1/events", json=_events(count), headers={"Prefer": "return=minimal"})
    assert r.status_code == 201, r.text
    assert r.json() == {"count": count}
    assert SEEN.calls == count  # once per event, not once in a pre-check and again to publish
    assert SEEN.on_loop == 0  # every one in a worker thread
    assert len(_stored(db)) == count


def test_a_bad_large_batch_is_refused_whole_and_validated_off_the_loop(
    app: tuple[TestClient, str, Path],
) -> None:
    client, _, db = app
    events = _events(1_500)
    events[7]["metadata"] = {"n": "seven"}
    events[1_400]["action"] = "no-dot"
    r = client.post("/v1/events", json=events)
    assert r.status_code == 422, r.text
    where = {(e["index"], e["loc"]) for e in r.json()["errors"]}
    assert (7, "metadata.n") in where and (1_400, "action") in where
    assert SEEN.on_loop == 0
    assert _stored(db) == []  # all or nothing


def _ndjson(events: list[dict[str, Any]]) -> bytes:
    return b"\n".join(json.dumps(e).encode() for e in events) + b"\n"


@pytest.mark.parametrize("media", ["application/x-ndjson", "application/json"])
def test_return_minimal_answers_count_and_stores_everything(
    app: tuple[TestClient, str, Path], media: str
) -> None:
    client, _, db = app
    sent: list[dict[str, Any]] = []
    for size in (1, 2, 999, 1_000, 2_500):
        events = _events(size)
        sent.extend(events)
        body = _ndjson(events) if media.endswith("ndjson") else json.dumps(events).encode()
        r = client.post(
            "/v1/events", content=body, headers={"Content-Type": media, "Prefer": "return=minimal"}
        )
        assert r.status_code == 201, r.text
        assert r.content == f'{{"count":{size}}}'.encode()
        assert r.headers["preference-applied"] == "return=minimal"
        assert r.headers["content-type"] == "application/json"
    assert _stored(db) == [(e["uid"], e["metadata"]["n"]) for e in sent]  # every one, in order


def test_ndjson_without_minimal_answers_the_stored_events(app: tuple[TestClient, str, Path]) -> None:
    client, _, _ = app
    events = _events(1_200)
    r = client.post("/v1/events", content=_ndjson(events), headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert "preference-applied" not in r.headers
    assert body["count"] == 1_200
    assert [(e["uid"], e["metadata"]["n"], e["workspace"]) for e in body["data"]] == [
        (e["uid"], e["metadata"]["n"], "w") for e in events
    ]


def test_republished_uids_in_a_large_batch_answer_the_first_stored_copy(
    app: tuple[TestClient, str, Path],
) -> None:
    client, _, db = app
    first = _events(1_100, timestamp=1_700_000_000_000)
    assert client.post("/v1/events", json=first).status_code == 201
    again = [{**e, "timestamp": 1_600_000_000_000, "metadata": {"n": -1}} for e in first[:600]]
    fresh = _events(600)
    r = client.post("/v1/events", json=again + fresh)
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert [d["metadata"]["n"] for d in data[:600]] == [e["metadata"]["n"] for e in first[:600]]
    assert {d["timestamp"] for d in data[:600]} == {1_700_000_000_000}
    assert len(_stored(db)) == 1_700


def test_ndjson_bad_line_stores_nothing(app: tuple[TestClient, str, Path]) -> None:
    client, _, db = app
    body = _ndjson(_events(1_100)).replace(b"\n", b"\n{oops\n", 1)
    r = client.post(
        "/v1/events",
        content=body,
        headers={"Content-Type": "application/x-ndjson", "Prefer": "return=minimal"},
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["msg"].startswith("line 2 is not JSON")
    assert _stored(db) == []


@pytest.mark.parametrize("size", [1, 3, 1_100])  # on the loop, and on an ingest thread
def test_return_minimal_names_the_events_not_stored_as_sent(
    app: tuple[TestClient, str, Path], size: int
) -> None:
    """A re-published uid keeps its first copy; the minimal answer lists those, by index, so a
    client that sent minimal still returns what is stored (and nothing else costs an answer)."""
    client, _, db = app
    first = _events(size, timestamp=1_700_000_000_000)
    r = client.post("/v1/events", json=first, headers={"Prefer": "return=minimal"})
    assert r.json() == {"count": size}  # all new: the count alone
    again = [{**e, "timestamp": 1_600_000_000_000, "metadata": {"n": -5}} for e in first[::2]]
    fresh = _events(2)
    r = client.post("/v1/events", json=fresh + again, headers={"Prefer": "return=minimal"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["count"] == len(fresh) + len(again)
    assert [k["index"] for k in body["kept"]] == [len(fresh) + i for i in range(len(again))]
    assert [(k["event"]["uid"], k["event"]["timestamp"], k["event"]["metadata"]) for k in body["kept"]] == [
        (e["uid"], 1_700_000_000_000, e["metadata"]) for e in first[::2]
    ]
    assert len(_stored(db)) == size + len(fresh)


def test_the_client_store_asks_for_minimal_answers_and_still_returns_stored_copies(
    live_server: LiveServer,
) -> None:
    workspace = f"cl-{uuid.uuid4().hex[:8]}"
    key = live_server.mint(workspace, "admin")
    seen: list[tuple[str | None, bytes]] = []

    def record(response: httpx.Response) -> None:
        response.read()
        if response.request.method == "POST":
            seen.append((response.request.headers.get("prefer"), response.content))

    with AuditLog(live_server.url, api_key=key, workspace=workspace) as log:
        log.store._client.event_hooks["response"].append(record)  # type: ignore[attr-defined]
        first = log.publish_many(
            [{"id": f"c:{i}", "action": "a.b", "metadata": {"n": i}} for i in range(300)]
        )
        assert seen[-1] == ("return=minimal", b'{"count":300}')  # no events sent back
        again = log.publish_many(
            [{"uid": e.uid, "id": e.id, "action": "a.b", "metadata": {"n": -1}} for e in first[:2]]
            + [{"id": "c:new", "action": "a.b", "metadata": {"n": 7}}]
        )
        assert seen[-1][0] == "return=minimal"
        assert [(e.uid, e.metadata, e.timestamp) for e in again[:2]] == [
            (e.uid, e.metadata, e.timestamp) for e in first[:2]
        ]  # the first copies, named by the minimal answer's `kept`
        assert again[2].metadata == {"n": 7}
    with AuditLog(live_server.url, api_key=key) as default_log:  # no workspace: the key's
        default_log.store._client.event_hooks["response"].append(record)  # type: ignore[attr-defined]
        event = default_log.publish_audit_log({"id": "c:1", "action": "a.b"})
        assert seen[-1][0] is None  # the full answer says which workspace it was filed in
        assert event.workspace == workspace


@pytest.mark.filterwarnings("ignore:coroutine 'GroupCommitStore.append' was never awaited")
def test_an_ingest_thread_never_waits_forever_on_a_stopped_loop(tmp_path: Path) -> None:
    """At shutdown the interpreter joins the ingest threads: one whose write the loop will
    never run gives up with StoreUnavailable (retry) instead of hanging the exit."""
    from auditbird import StoreUnavailable
    from auditbird.codec import encode
    from auditbird.service.writer import GroupCommitStore, WriterView
    from auditbird.stores.sqlite import SQLiteStore
    from auditbird.validation import validate_event

    store = SQLiteStore(tmp_path / "stopped.db")
    writer = GroupCommitStore(store)
    row = encode(validate_event({"id": "x:1", "action": "a.b"}, ActionRegistry()))
    loop = asyncio.new_event_loop()  # never run
    with pytest.raises(StoreUnavailable, match="retry"):
        WriterView(writer, loop).append([row])
    loop.close()
    with pytest.raises(StoreUnavailable, match="shutting down"):
        WriterView(writer, loop).append([row])
    assert store.query(Query(workspace="")) == []  # nothing was written
    store.close()
