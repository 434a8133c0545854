"""The Tinybird store end to end, against the Tinybird-compatible local server (chDB).

Run with ``-p tests.plugins.tinybird_server -p tests.plugins.tinybird_store``. Every test
writes to its own workspace (``ws``), so tests sharing the server never see each other's rows.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from auditbird import ActionRegistry, AsyncAuditLog, AuditLog, Query, Tinybird, action
from auditbird.codec import encode
from auditbird.event import Event, new_uid
from auditbird.stores.tinybird import (
    AuthenticationError,
    QuarantinedRows,
    ResourceNotFound,
    TinybirdStore,
)

pytestmark = pytest.mark.timeout(120)

SEED = {
    "id": "monitor:1",
    "action": "monitor.down",
    "targets": [{"id": "1", "type": "monitor"}],
    "metadata": {"region": "gru", "statusCode": 400, "message": "timeout"},
}


@pytest.fixture
def ws() -> str:
    return f"w{uuid.uuid4().hex[:12]}"


def _store(server: Any, **options: Any) -> TinybirdStore:
    return TinybirdStore(Tinybird(token=server.token, host=server.url), **options)


def _events(ws: str, n: int, **kw: Any) -> list[Event]:
    def one(i: int) -> Event:
        fields: dict[str, Any] = {
            "id": f"monitor:{i % 3}",
            "action": "monitor.down" if i % 2 else "monitor.recovered",
            "actor": {"id": f"u{i % 4}", "name": "someone"},
            "targets": [{"id": str(i % 5), "type": "monitor"}],
            "timestamp": 1_700_000_000_000 + i,
            "metadata": {"n": i},
            "workspace": ws,
        }
        return Event.model_validate({**fields, **kw})

    return [one(i) for i in range(n)]


def _uids(store: TinybirdStore, ws: str, **filters: Any) -> list[str]:
    return [r.uid for r in store.query(Query(workspace=ws, limit=None, **filters))]


def _raw_count(server: Any, ws: str) -> int:
    sql = f"SELECT count() AS n FROM audit_log WHERE workspace = '{ws}' FORMAT JSON"  # noqa: S608 - test ws
    answer = httpx.get(
        f"{server.url}/v0/sql", params={"q": sql}, headers={"Authorization": f"Bearer {server.token}"}
    )
    answer.raise_for_status()
    return int(answer.json()["data"][0]["n"])


# -- the seed ----------------------------------------------------------------------------------


def test_seed_example_publishes_and_reads_back(
    tinybird_server: Any, ws: str, registry: ActionRegistry
) -> None:
    @action("monitor.down", registry=registry)
    class MonitorDown(BaseModel):
        region: str
        statusCode: int
        message: str | None = None

    tb = Tinybird(token=tinybird_server.token, host=tinybird_server.url)
    with AuditLog(tb=tb, workspace=ws, registry=registry) as log:
        published = log.publish_audit_log(SEED)
        [read] = log.get_audit_log(event_id="monitor:1")
    assert read.uid == published.uid
    assert read.metadata == MonitorDown(region="gru", statusCode=400, message="timeout")
    assert read.to_dict() == published.to_dict()
    assert read.to_dict()["targets"] == [{"id": "1", "type": "monitor"}]
    assert (read.actor.id, read.actor.name) == ("", "system")


def test_store_url_opens_the_local_server(tinybird_server: Any, ws: str) -> None:
    host = tinybird_server.url.split("://", 1)[1]
    with AuditLog(f"tinybird+http://{tinybird_server.token}@{host}", workspace=ws) as log:
        stored = log.publish_audit_log(SEED)
        assert [e.uid for e in log.get_audit_log(event_id="monitor:1")] == [stored.uid]


async def test_async_twin_publishes_and_reads(tinybird_server: Any, ws: str) -> None:
    tb = Tinybird(token=tinybird_server.token, host=tinybird_server.url)
    async with AsyncAuditLog(tb=tb, workspace=ws) as log:
        events = await log.publish_many([{**SEED, "timestamp": 1_700_000_000_000 + i} for i in range(3)])
        read = await log.get_audit_log(event_id="monitor:1")
        page = await log.list(target_id="1", limit=2)
    assert [e.uid for e in read] == [e.uid for e in reversed(events)]
    assert len(page.events) == 2 and page.next_cursor is not None


# -- filters and the cursor ----------------------------------------------------------------------


def test_every_filter_and_both_orders_with_the_cursor(tinybird_server: Any, ws: str) -> None:
    events = _events(ws, 30)
    with _store(tinybird_server, batch_rows=7) as store:  # several requests
        store.append([encode(e) for e in events])
        by_n = {e.uid: e.metadata["n"] for e in events}

        def ns(**filters: Any) -> list[int]:
            return [by_n[u] for u in _uids(store, ws, **filters)]

        t0 = 1_700_000_000_000
        assert ns() == list(range(29, -1, -1))
        assert ns(event_id="monitor:1") == [i for i in range(29, -1, -1) if i % 3 == 1]
        assert sorted(ns(actions=("monitor.down",))) == [i for i in range(30) if i % 2]
        assert sorted(ns(actions=("monitor.down", "monitor.recovered"))) == list(range(30))
        assert sorted(ns(actor_id="u2")) == [i for i in range(30) if i % 4 == 2]
        assert sorted(ns(target_type="monitor", target_id="4")) == [i for i in range(30) if i % 5 == 4]
        assert sorted(ns(target_id="4")) == [i for i in range(30) if i % 5 == 4]
        assert ns(target_type="incident") == []
        assert ns(since=t0 + 10, until=t0 + 13) == [12, 11, 10]
        assert ns(uid=events[17].uid) == [17]
        assert ns(text='"n":17') == [17]
        assert ns(order="asc", since=t0 + 27) == [27, 28, 29]

        for order in ("desc", "asc"):
            seen: list[int] = []
            after = None
            while True:
                page = store.query(Query(workspace=ws, order=order, limit=4, after=after))  # type: ignore[arg-type]
                seen.extend(by_n[r.uid] for r in page)
                if len(page) < 4:
                    break
                after = (page[-1].timestamp, page[-1].uid)
            assert seen == (list(range(29, -1, -1)) if order == "desc" else list(range(30)))


def test_stream_history_keeps_uid_order_within_a_millisecond(tinybird_server: Any, ws: str) -> None:
    uids = sorted(new_uid() for _ in range(5))
    rows = [encode(Event(id="s:1", action="a.b", timestamp=5, uid=u, workspace=ws)) for u in uids]
    with _store(tinybird_server) as store:
        store.append(rows)
        assert _uids(store, ws, event_id="s:1") == uids[::-1]


# -- writes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_gzip_and_plain_bodies_are_both_stored(tinybird_server: Any, ws: str, compress: bool) -> None:
    events = _events(ws, 50, targets=[{"id": "ü-1", "name": "páge"}])
    with _store(tinybird_server, compress=compress) as store:
        store.append([encode(e) for e in events])
        rows = store.query(Query(workspace=ws, limit=None, order="asc"))
    assert rows == [encode(e) for e in events]


def test_duplicates_are_stored_but_never_returned_twice(tinybird_server: Any, ws: str) -> None:
    rows = [encode(e) for e in _events(ws, 10)]
    with _store(tinybird_server) as store:
        store.append(rows)
        store.append(rows[:5])  # a retried publish
        store.append(rows[4:6])
        # The Events API has no idempotency key: up to 17 rows are stored until ReplacingMergeTree
        # merges them away (whenever it likes)...
        assert 10 <= _raw_count(tinybird_server, ws) <= 17
        assert sorted(_uids(store, ws)) == sorted(r.uid for r in rows)  # ...but reads de-duplicate
        assert len(_uids(store, ws, event_id="monitor:1")) == 3
        assert len(store.query(Query(workspace=ws, event_id="monitor:1", limit=10))) == 3


@pytest.mark.parametrize(
    "evil",
    [
        "x' OR '1'='1",
        "x'); DROP TABLE audit_log; --",
        "\\' OR 1=1 --",
        "{{ workspace }}",
        "{% if 1 %}x{% end %}",
        "a,b' ,'c",
    ],
)
def test_injection_in_a_parameter_is_harmless(tinybird_server: Any, ws: str, evil: str) -> None:
    with _store(tinybird_server) as store:
        store.append([encode(Event(id=evil, action="a.b", actor={"id": evil, "name": "n"}, workspace=ws))])
        store.append([encode(Event(id="other", action="a.b", workspace=ws))])
        # The value is matched literally, as data...
        for filters in ({"event_id": evil}, {"actor_id": evil}, {"text": evil}):
            [row] = store.query(Query(workspace=ws, **filters))  # type: ignore[arg-type]
            assert row.id == evil
        assert [r.id for r in store.query(Query(workspace=ws, event_id=evil))] == [evil]
        # ...and never widens a read, nor escapes the workspace.
        assert store.query(Query(workspace=evil, limit=10)) == []
        assert store.query(Query(workspace=ws, actions=(evil,), limit=10)) == []
        assert store.query(Query(workspace=ws, target_type=evil, target_id=evil)) == []
        assert len(store.query(Query(workspace=ws, limit=10))) == 2


def test_quarantined_rows_are_an_error_saying_how_many_and_why(tinybird_server: Any, ws: str) -> None:
    good, bad = [encode(e) for e in _events(ws, 2)]
    bad = bad._replace(version=2**40)  # does not fit the datasource's Int32
    with _store(tinybird_server) as store, pytest.raises(QuarantinedRows) as info:
        store.append([good, bad])
    assert (info.value.quarantined, info.value.successful) == (1, 1)
    assert "1 row(s) were quarantined in audit_log_quarantine" in str(info.value)
    assert "version" in str(info.value)
    with _store(tinybird_server) as store:
        assert _uids(store, ws) == [good.uid]


def test_wrong_token_fails_at_once_with_an_authentication_error(tinybird_server: Any, ws: str) -> None:
    start = time.monotonic()
    with TinybirdStore(Tinybird(token="p.wrong", host=tinybird_server.url)) as store:
        with pytest.raises(AuthenticationError, match="rejected the token"):
            store.append([encode(e) for e in _events(ws, 1)])
        with pytest.raises(AuthenticationError):
            store.query(Query(workspace=ws))
    assert time.monotonic() - start < 3


def test_unknown_datasource_is_named_in_the_error(tinybird_server: Any, ws: str) -> None:
    tb = Tinybird(token=tinybird_server.token, host=tinybird_server.url, datasource="no_such_ds")
    with TinybirdStore(tb) as store:
        with pytest.raises(ResourceNotFound, match="datasource 'no_such_ds'"):
            store.append([encode(e) for e in _events(ws, 1)])
        with pytest.raises(ResourceNotFound, match="pipe 'list_no_such_ds'"):
            store.query(Query(workspace=ws, actions=("a.b",)))


# -- faults ------------------------------------------------------------------------------------


def test_retries_under_injected_failures_store_everything_once(tinybird_server_factory: Any, ws: str) -> None:
    server = tinybird_server_factory(fail_rate=0.3)
    events = _events(ws, 200)
    with _store(server, batch_rows=10, max_retries=20, max_retry_time=60) as store:
        for i in range(0, 200, 40):
            store.append([encode(e) for e in events[i : i + 40]])
        got = _uids(store, ws)
    assert sorted(got) == sorted(e.uid for e in events)
    assert len(got) == len(set(got)) == 200


def test_throttled_writes_wait_and_succeed(tinybird_server_factory: Any, ws: str) -> None:
    server = tinybird_server_factory(throttle=3)
    rows = [encode(e) for e in _events(ws, 12)]
    start = time.monotonic()
    with _store(server, max_retry_time=30) as store:
        for row in rows:  # 12 requests at 3/s: most are answered 429 first
            store.append([row])
        assert sorted(_uids(store, ws)) == sorted(r.uid for r in rows)
    assert time.monotonic() - start >= 2.0
