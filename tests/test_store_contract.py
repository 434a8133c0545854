"""The store contract: every store (SQLite, Tinybird via the local server, the service client)
must pass this suite unchanged. Logs from one ``make_log`` share one underlying store."""

from __future__ import annotations

import time

import pytest
from pydantic import BaseModel

from auditbird import ActionRegistry, AuditValidationError, action
from auditbird.event import new_uid

SEED = {
    "id": "monitor:1",
    "action": "monitor.down",
    "targets": [{"id": "1", "type": "monitor"}],
    "metadata": {"region": "gru", "statusCode": 400, "message": "timeout"},
}


def _ev(i: int, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": f"monitor:{i % 3}",
        "action": "monitor.down" if i % 2 else "monitor.recovered",
        "actor": {"id": f"u{i % 4}", "name": f"user {i % 4}"},
        "targets": [{"id": str(i % 5), "type": "monitor"}, {"id": "p1", "name": "page"}],
        "timestamp": 1_700_000_000_000 + i * 1000,
        "metadata": {"n": i, "note": "needle" if i == 7 else "hay"},
    }
    base.update(kw)
    return base


def test_seed_example_round_trips(make_log, registry: ActionRegistry) -> None:
    @action("monitor.down", registry=registry)
    class MonitorDown(BaseModel):
        region: str
        statusCode: int
        message: str | None = None

    log = make_log(registry=registry)
    stored = log.publish_audit_log(SEED)
    [read] = log.get_audit_log(event_id="monitor:1")
    assert read.uid == stored.uid
    assert read.metadata == MonitorDown(region="gru", statusCode=400, message="timeout")
    assert read.actor.id == "" and read.actor.name == "system"
    assert read.to_dict() == stored.to_dict()
    assert read.to_dict()["targets"] == [{"id": "1", "type": "monitor"}]


def test_both_target_shapes_round_trip_unchanged(make_log) -> None:
    log = make_log()
    targets = [{"id": "1", "name": "monitor"}, {"id": "2", "type": "incident"}]
    log.publish_audit_log({"id": "s:1", "action": "thing.done", "targets": targets})
    [read] = log.get_audit_log(event_id="s:1")
    assert read.to_dict()["targets"] == targets


def test_stream_history_is_newest_first_with_uid_tiebreak(make_log) -> None:
    log = make_log()
    ts = 1_700_000_000_000
    uids = sorted(new_uid() for _ in range(3))
    log.publish_many(
        [
            {"id": "m:1", "action": "a.b", "timestamp": ts, "uid": uids[0]},
            {"id": "m:1", "action": "a.b", "timestamp": ts + 5, "uid": uids[1]},
            {"id": "m:1", "action": "a.b", "timestamp": ts, "uid": uids[2]},
            {"id": "m:2", "action": "a.b", "timestamp": ts + 9},
        ]
    )
    got = [e.uid for e in log.get_audit_log(event_id="m:1")]
    assert got == [uids[1], uids[2], uids[0]]


def test_list_filters(make_log) -> None:
    log = make_log()
    log.publish_many([_ev(i) for i in range(20)])
    ts0 = 1_700_000_000_000

    def ns(**filters: object) -> list[int]:
        return sorted(e.to_dict()["metadata"]["n"] for e in log.list(limit=100, **filters))

    assert ns(action="monitor.down") == [i for i in range(20) if i % 2]
    assert ns(action=["monitor.down", "monitor.recovered"]) == list(range(20))
    assert ns(actor_id="u1") == [i for i in range(20) if i % 4 == 1]
    assert ns(target_type="monitor", target_id="3") == [i for i in range(20) if i % 5 == 3]
    assert ns(target_id="3") == [i for i in range(20) if i % 5 == 3]
    assert ns(target_type="page") == list(range(20))
    assert ns(event_id="monitor:2") == [i for i in range(20) if i % 3 == 2]
    assert ns(since=ts0 + 5000, until=ts0 + 8000) == [5, 6, 7]
    assert ns(action="monitor.down", actor_id="u3", since=ts0 + 10_000) == [11, 15, 19]
    assert ns(text="needle") == [7]
    assert ns(action="nothing.here") == []


def test_cursor_pages_cover_everything_once_in_order(make_log) -> None:
    log = make_log()
    # Several events per millisecond: the uid tie-break must keep pages stable.
    log.publish_many([_ev(i, timestamp=1_700_000_000_000 + i // 3) for i in range(25)])
    seen, cursor, pages = [], None, 0
    while True:
        page = log.list(limit=4, cursor=cursor)
        seen.extend(page.events)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 7
    assert len(seen) == 25 and len({e.uid for e in seen}) == 25
    keys = [(e.timestamp, e.uid) for e in seen]
    assert keys == sorted(keys, reverse=True)
    assert log.list(limit=25).next_cursor is None


def test_same_uid_twice_is_stored_once(make_log) -> None:
    log = make_log()
    uid = new_uid()
    log.publish_audit_log({"id": "d:1", "action": "a.b", "uid": uid})
    log.publish_audit_log({"id": "d:1", "action": "a.b", "uid": uid})
    log.publish_many([{"id": "d:1", "action": "a.b", "uid": uid}, {"id": "d:1", "action": "a.c"}])
    events = log.get_audit_log(event_id="d:1")
    assert sorted(e.action for e in events) == ["a.b", "a.c"]


def test_batch_with_one_bad_event_stores_nothing(make_log) -> None:
    log = make_log()
    with pytest.raises(AuditValidationError) as info:
        log.publish_many([_ev(1), {"id": "", "action": "x.y"}, _ev(2)])
    assert [p.index for p in info.value.problems] == [1]
    assert log.list(limit=10).events == []


def test_workspaces_never_see_each_other(make_log) -> None:
    a, b = make_log(workspace="acme"), make_log(workspace="globex")
    ea = a.publish_audit_log(_ev(1, id="shared:1"))
    eb = b.publish_audit_log(_ev(2, id="shared:1"))
    assert ea.workspace == "acme" and eb.workspace == "globex"
    assert [e.uid for e in a.get_audit_log(event_id="shared:1")] == [ea.uid]
    assert [e.uid for e in b.list(limit=100)] == [eb.uid]
    assert b.get(ea.uid) is None and a.get(ea.uid) is not None
    assert [e.uid for e in a.list(target_type="page", limit=100)] == [ea.uid]


def test_default_timestamp_is_evaluated_per_event(make_log) -> None:
    log = make_log()
    first = log.publish_audit_log({"id": "t:1", "action": "a.b"})
    time.sleep(0.005)
    second = log.publish_audit_log({"id": "t:1", "action": "a.b"})
    assert second.timestamp > first.timestamp
    assert abs(first.timestamp - int(time.time() * 1000)) < 60_000


def test_metadata_that_no_longer_fits_is_returned_marked(make_log, registry: ActionRegistry) -> None:
    log = make_log(registry=registry)
    log.publish_audit_log({"id": "old:1", "action": "monitor.paused", "metadata": {"reason": 5}})

    @action("monitor.paused", registry=registry)
    class Paused(BaseModel):
        reason: str
        until: int

    [event] = log.get_audit_log(event_id="old:1")
    assert event.metadata == {"reason": 5}
    assert event.schema_error is not None and "until" in event.schema_error


def test_get_by_uid(make_log) -> None:
    log = make_log()
    stored = log.publish_audit_log(SEED)
    got = log.get(stored.uid)
    assert got is not None and got.to_dict() == stored.to_dict()
    assert log.get(new_uid()) is None


def test_an_event_is_listed_once_however_many_of_its_targets_match(make_log) -> None:
    log = make_log()
    stored = log.publish_audit_log(
        {
            "id": "m:1",
            "action": "a.b",
            "targets": [{"id": "1", "type": "monitor"}, {"id": "2", "type": "monitor"}],
        }
    )
    log.publish_audit_log({"id": "m:2", "action": "a.c", "targets": [{"id": "1", "type": "page"}]})
    assert [e.uid for e in log.list(target_type="monitor")] == [stored.uid]
    assert len(log.list(target_id="1")) == 2
    assert [e.uid for e in log.list(action=["a.b", "a.b"])] == [stored.uid]
