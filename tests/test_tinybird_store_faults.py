"""Regression tests for the Tinybird path's faults in issue #9 (the client's side), against the
local server: what SQLite stores and returns, Tinybird must store and return too."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditbird import AuditLog, Tinybird
from auditbird.codec import encode
from auditbird.event import Event
from auditbird.relay import Relay
from auditbird.stores._tinybird_http import encode_line
from auditbird.stores.tinybird import TinybirdStore
from tests.test_es_relay import CrashAfterAppend

pytest.importorskip("chdb")

# Valid text that str.splitlines() (and JavaScript before ES2019) takes for a line break.
BREAKS = ["a\u0085b", "c\u2028d", "e\u2029f", "z\u2028", "x\u0085\u2028\u2029y"]
T0 = 1_700_000_000_000


def _events(prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "id": f"monitor:{prefix}{text}",
            "action": "monitor.checked",
            "actor": {"id": f"user{text}", "name": text},
            "targets": [{"id": text, "type": "monitor"}],
            "metadata": {"note": text, "i": i},
        }
        for i, text in enumerate(BREAKS)
    ]


def _readable(log: AuditLog, workspace: str = "") -> dict[int, Any]:
    return {e.metadata["i"]: e for e in log.iter_events(page_size=100, workspace=workspace)}


def test_an_ndjson_line_holds_no_character_a_reader_may_split_on() -> None:
    for text in BREAKS:
        row = encode(Event(id=text, action="a.b", actor={"id": text}, metadata={"t": text}))
        line = encode_line(row)
        assert line.splitlines() == [line] and "\u2028" not in line and "\x85" not in line
        assert json.loads(line)["id"] == text and json.loads(json.loads(line)["metadata"])["t"] == text


def test_line_break_characters_survive_publish_many(tinybird_log_factory: Any) -> None:
    log = tinybird_log_factory()
    published = log.publish_many(_events("many"))
    got = _readable(log)
    assert sorted(got) == list(range(len(BREAKS)))
    for i, event in enumerate(published):
        assert got[i].id == event.id and got[i].metadata == event.metadata and got[i].actor == event.actor


def test_line_break_characters_survive_buffered_publishes(tinybird_log_factory: Any, tmp_path: Path) -> None:
    log = tinybird_log_factory(buffered=True, spool_path=tmp_path / "spool.db", flush_interval=60)
    published = [log.publish_audit_log(e) for e in _events("buffered")]
    log.store.store.flush()
    got = _readable(log)
    assert [got[i].metadata["note"] for i in range(len(BREAKS))] == BREAKS
    assert {e.uid for e in got.values()} == {e.uid for e in published}


def test_line_break_characters_survive_the_relay(tinybird_server: Any, tmp_path: Path) -> None:
    workspace = f"relay-breaks-{uuid.uuid4().hex[:8]}"
    source = tmp_path / "app.db"
    with AuditLog(f"sqlite:///{source}", workspace=workspace) as log:
        log.publish_many(_events("relay") * 1)
    with Relay(f"sqlite:///{source}", _store(tinybird_server), name="tb", batch=2) as relay:
        assert relay.run() == len(BREAKS)
    with AuditLog(_store(tinybird_server)) as remote:
        got = _readable(remote, workspace)
    assert [got[i].metadata["note"] for i in range(len(BREAKS))] == BREAKS


def _store(server: Any, **options: Any) -> TinybirdStore:
    return TinybirdStore(Tinybird(token=server.token, host=server.url), **options)


def test_a_uid_retried_with_a_new_timestamp_is_returned_once_as_first_stored(
    tinybird_log_factory: Any,
) -> None:
    log = tinybird_log_factory()
    uid = "0190a1b2-0000-7000-8000-00000000abcd"
    first = log.publish_audit_log(
        {"uid": uid, "id": "monitor:1", "action": "monitor.down", "timestamp": T0, "metadata": {"try": 1}}
    )
    for n in range(1, 4):  # other events between the two copies
        log.publish_audit_log({"id": "monitor:1", "action": "monitor.up", "timestamp": T0 + n * 1000})
    # A retry whose default timestamp was taken again (later), with other content.
    log.publish_audit_log(
        {
            "uid": uid,
            "id": "monitor:1",
            "action": "monitor.down",
            "timestamp": T0 + 9000,
            "metadata": {"try": 2},
        }
    )
    for events in (
        log.get_audit_log("monitor:1"),
        list(log.iter_events(page_size=1)),
        list(log.iter_events(page_size=2, event_id="monitor:1")),
        list(log.history("monitor:1")),
    ):
        copies = [e for e in events if e.uid == uid]
        assert len(events) == 4 and len(copies) == 1
        assert copies[0].timestamp == T0 and copies[0].metadata == first.metadata == {"try": 1}
    assert log.get(uid).metadata == {"try": 1}  # type: ignore[union-attr]
    assert [e.uid for e in log.list(since=T0 + 5000).events] == []  # the first copy's time decides


def test_a_target_filter_is_not_fooled_by_a_colon(tinybird_log_factory: Any) -> None:
    log = tinybird_log_factory()
    event = log.publish_audit_log({"id": "x:1", "action": "a.b", "targets": [{"type": "a", "id": "b:c"}]})
    assert log.list(target_type="a:b", target_id="c").events == []
    assert [e.uid for e in log.list(target_type="a", target_id="b:c").events] == [event.uid]
    assert [e.uid for e in log.list(target_type="a").events] == [event.uid]
    assert [e.uid for e in log.list(target_id="b:c").events] == [event.uid]
    # Two targets: a type of one with the id of the other is not a target.
    two = log.publish_audit_log(
        {"id": "x:2", "action": "a.b", "targets": [{"type": "t1", "id": "i1"}, {"name": "t2", "id": "i2"}]}
    )
    assert log.list(target_type="t1", target_id="i2").events == []
    assert [e.uid for e in log.list(target_type="t2", target_id="i2").events] == [two.uid]


def test_text_search_folds_only_ascii_letters(tinybird_log_factory: Any, sqlite_log: AuditLog) -> None:
    log = tinybird_log_factory()
    for target in (log, sqlite_log):
        target.publish_audit_log({"id": "doc:Straße", "action": "a.b", "metadata": {"n": "ÜBER Ärger"}})

    def found(on: AuditLog, text: str) -> int:
        return len(on.list(text=text).events)

    for text, expected in (
        ("über", 0),
        ("ÜBER", 1),
        ("Über", 1),  # Ü as stored, then ASCII letters in either case
        ("äRGER", 0),
        ("Ärger", 1),
        ("straße", 1),
        ("STRASSE", 0),
        ("STRAßE", 1),
        ("doc:", 1),
    ):
        assert found(log, text) == expected == found(sqlite_log, text), text


def test_a_restarted_relay_checks_its_in_doubt_batch_with_one_query(
    tinybird_server: Any, tmp_path: Path
) -> None:
    workspace = f"relay-doubt-{uuid.uuid4().hex[:8]}"
    source = tmp_path / "app.db"
    with AuditLog(f"sqlite:///{source}", workspace=workspace) as log:
        log.publish_many([{"id": f"m:{i}", "action": "a.b", "metadata": {"i": i}} for i in range(30)])
    with pytest.raises(KeyboardInterrupt):
        Relay(
            f"sqlite:///{source}", CrashAfterAppend(_store(tinybird_server), crash_on=2), name="tb", batch=10
        ).run()
    reads: list[str] = []
    store = _store(tinybird_server)
    store._client = httpx.Client(
        event_hooks={"request": [lambda r: reads.append(r.url.path) if "/pipes/" in r.url.path else None]}
    )
    with Relay(f"sqlite:///{source}", store, name="tb", batch=10) as relay:
        assert relay.position == 10  # batch 2 was stored, its position never saved: in doubt
        assert relay.step() == 10
        assert len(reads) == 1  # one query for the whole in-doubt batch, not one per row
        assert relay.run() == 10 and len(reads) == 1  # later batches are not in doubt
    with AuditLog(_store(tinybird_server)) as remote:
        got = [e.metadata["i"] for e in remote.iter_events(workspace=workspace)]
    assert sorted(got) == list(range(30))


def test_rows_from_a_client_that_sends_no_lookup_columns_are_found_by_them(tinybird_server: Any) -> None:
    """Another client's rows (the nine row columns only) get the look-up columns from their DEFAULTs."""
    workspace = f"plain-{uuid.uuid4().hex[:8]}"
    row = {
        "uid": "0190a1b2-0000-7000-8000-000000000042",
        "workspace": workspace,
        "id": "monitor:1",
        "action": "monitor.down",
        "actor": '{"id":"user7","name":"someone"}',
        "targets": '[{"id":"b:c","type":"a"},{"id":"9","name":"page"}]',
        "metadata": None,
        "timestamp": T0,
        "version": 1,
    }
    answer = httpx.post(
        f"{tinybird_server.url}/v0/events",
        params={"name": "audit_log", "wait": "true"},
        content=json.dumps(row).encode(),
        headers=tinybird_server.headers,
    )
    assert answer.json() == {"successful_rows": 1, "quarantined_rows": 0}
    with AuditLog(_store(tinybird_server), workspace=workspace) as log:
        assert [e.uid for e in log.list(actor_id="user7").events] == [row["uid"]]
        assert [e.uid for e in log.list(target_type="page", target_id="9").events] == [row["uid"]]
        assert log.list(target_type="a:b", target_id="c").events == []
