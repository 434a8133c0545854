"""Publishing a uid again says which copy is stored (issue #11, "silent surprises").

A uid is unique per workspace and the first stored copy wins. A publish whose uid is already
stored keeps the first copy, and ``publish_audit_log`` / ``publish_many`` return THAT copy, not
the one submitted, on every store that can tell at write time (SQLite, memory, the service).
Tinybird's Events API answers without looking, so there the submitted event comes back and
``log.get(uid)`` reads the stored one (documented; no read is added to every publish).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from auditbird import AsyncAuditLog, AuditLog, Event
from auditbird.event import new_uid
from auditbird.stores.sqlite import SQLiteStore

from .conftest import MakeLog
from .plugins.service import LiveServer

# Stores whose append cannot say what was already stored (see the module docstring).
CANNOT_TELL = {"tinybird"}


@pytest.fixture
def kind(request: pytest.FixtureRequest, make_log: MakeLog) -> str:
    value: str = request.node.callspec.params["make_log"]
    return value


def _first(uid: str, **extra: Any) -> dict[str, Any]:
    return {
        "uid": uid,
        "id": "monitor:1",
        "action": "monitor.down",
        "timestamp": 1_700_000_000_000,
        "metadata": {"region": "gru"},
        **extra,
    }


def _other(uid: str, **extra: Any) -> dict[str, Any]:
    """The same uid, other content: another subject, action, time and metadata."""
    return {
        "uid": uid,
        "id": "monitor:2",
        "action": "monitor.up",
        "timestamp": 1_700_000_999_000,
        "metadata": {"region": "fra"},
        **extra,
    }


def _same(a: Event, b: Event) -> bool:
    return a.to_dict() == b.to_dict()


def test_republishing_a_uid_with_other_content_returns_the_stored_copy(make_log: MakeLog, kind: str) -> None:
    log = make_log("acme")
    uid = new_uid()
    first = log.publish_audit_log(_first(uid))
    again = log.publish_audit_log(_other(uid))

    stored = log.get_audit_log(event_id="monitor:1")
    assert [e.uid for e in stored] == [uid]
    assert log.get_audit_log(event_id="monitor:2") == []
    assert _same(log.event(uid), first)
    if kind in CANNOT_TELL:
        assert (again.id, again.action) == ("monitor:2", "monitor.up")  # as submitted, documented
    else:
        assert _same(again, first)
        assert (again.id, again.action, again.timestamp) == ("monitor:1", "monitor.down", 1_700_000_000_000)
        assert again.metadata == {"region": "gru"}
        assert again.workspace == "acme"


def test_publish_many_returns_the_stored_copy_of_each_taken_uid(make_log: MakeLog, kind: str) -> None:
    log = make_log("acme")
    taken = new_uid()
    first = log.publish_audit_log(_first(taken))
    fresh_a, fresh_b = new_uid(), new_uid()
    batch = [_other(fresh_a), _other(taken), _other(fresh_b, id="monitor:3")]
    returned = log.publish_many(batch)

    assert [e.uid for e in returned] == [fresh_a, taken, fresh_b]
    assert (returned[0].id, returned[2].id) == ("monitor:2", "monitor:3")  # new uids: as submitted
    if kind in CANNOT_TELL:
        assert returned[1].id == "monitor:2"
    else:
        assert _same(returned[1], first)
    assert [e.uid for e in log.get_audit_log(event_id="monitor:1")] == [taken]
    assert [e.uid for e in log.get_audit_log(event_id="monitor:2")] == [fresh_a]


def test_a_uid_repeated_inside_one_batch_returns_its_first_copy_twice(make_log: MakeLog, kind: str) -> None:
    log = make_log("acme")
    uid = new_uid()
    returned = log.publish_many([_first(uid), _other(uid)])

    assert [e.uid for e in log.get_audit_log(event_id="monitor:1")] == [uid]
    assert log.get_audit_log(event_id="monitor:2") == []
    assert returned[0].id == "monitor:1"
    if kind not in CANNOT_TELL:
        assert _same(returned[1], returned[0])


def test_republishing_the_same_event_returns_it_unchanged(make_log: MakeLog) -> None:
    log = make_log("acme")
    first = log.publish_audit_log(_first(new_uid()))
    assert _same(log.publish_audit_log(first), first)
    assert _same(log.publish_many([first])[0], first)
    assert len(log.get_audit_log(event_id="monitor:1")) == 1


def test_the_async_facade_returns_the_stored_copy_too(make_log: MakeLog, kind: str) -> None:
    log = make_log("acme")
    uid = new_uid()
    first = log.publish_audit_log(_first(uid))

    async def main() -> tuple[Event, list[Event]]:
        alog = AsyncAuditLog(log.store, workspace="acme")
        one = await alog.publish_audit_log(_other(uid))
        many = await alog.publish_many([_other(new_uid()), _other(uid)])
        return one, many

    one, many = asyncio.run(main())
    if kind in CANNOT_TELL:
        assert one.id == many[1].id == "monitor:2"
    else:
        assert _same(one, first)
        assert _same(many[1], first)
    assert many[0].id == "monitor:2"


# -- cheap: a publish whose uid is new reads nothing ------------------------------------------


@pytest.fixture
def traced_sqlite(tmp_path: Any) -> Iterator[tuple[AuditLog, list[str]]]:
    """A log over a real SQLite file with every statement its writer runs recorded."""
    store = SQLiteStore(tmp_path / "traced.db")
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    with AuditLog(store, workspace="acme") as log:
        yield log, statements


def _reads(statements: list[str]) -> list[str]:
    """The publish's own reads: not the Merkle tree's upkeep in the same transaction (on a
    writer's first append it finds the last row the tree covers and reads the rows after it,
    whatever the uids; see stores/sqlite_tree.py)."""
    return [
        s
        for s in statements
        if s.lstrip().upper().startswith("SELECT")
        and "merkle_" not in s
        and "FROM audit_log WHERE position >" not in s
        and "FROM audit_log WHERE position <" not in s
    ]


def test_a_new_uid_is_published_without_a_read(traced_sqlite: tuple[AuditLog, list[str]]) -> None:
    log, statements = traced_sqlite
    statements.clear()
    log.publish_audit_log(_first(new_uid()))
    log.publish_audit_log({"id": "monitor:1", "action": "monitor.down"})
    assert _reads(statements) == []
    statements.clear()
    log.publish_many([_other(new_uid()) for _ in range(3)])
    # The batch path asks for the last position once (to number the rows), never for uids.
    assert all("max(position)" in s for s in _reads(statements))


def test_only_a_taken_uid_costs_a_read(traced_sqlite: tuple[AuditLog, list[str]]) -> None:
    log, statements = traced_sqlite
    uid = new_uid()
    first = log.publish_audit_log(_first(uid))
    statements.clear()
    assert _same(log.publish_audit_log(_other(uid)), first)
    assert len(_reads(statements)) == 1


def test_sqlite_keeps_the_first_copy_across_processes(tmp_path: Any) -> None:
    """Another writer's copy is the stored one: the answer comes from the file, not memory."""
    path = tmp_path / "shared.db"
    uid = new_uid()
    with AuditLog(f"sqlite:///{path}") as one:
        first = one.publish_audit_log(_first(uid))
    with AuditLog(f"sqlite:///{path}") as two:
        assert _same(two.publish_audit_log(_other(uid)), first)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (1,)


# -- the service client: events come back in the key's workspace ------------------------------


def test_the_service_client_returns_events_in_the_keys_workspace(live_server: LiveServer) -> None:
    key = live_server.mint("acme-ws", "admin")
    with AuditLog(live_server.url, api_key=key) as log:  # no workspace=: the key's
        one = log.publish_audit_log({"id": "monitor:1", "action": "monitor.down"})
        many = log.publish_many([{"id": "monitor:1", "action": "monitor.up"}])
        stored = log.event(one.uid)
    assert one.workspace == stored.workspace == "acme-ws"
    assert [e.workspace for e in many] == ["acme-ws"]
    assert _same(one, stored)


def test_the_async_service_client_too(live_server: LiveServer) -> None:
    key = live_server.mint("acme-async", "admin")

    async def main() -> tuple[Event, list[Event]]:
        log = AsyncAuditLog(live_server.url, api_key=key)
        try:
            one = await log.publish_audit_log({"id": "monitor:1", "action": "monitor.down"})
            many = await log.publish_many([{"id": "monitor:1", "action": "monitor.up"}])
        finally:
            await log.close()
        return one, many

    one, many = asyncio.run(main())
    assert one.workspace == "acme-async"
    assert [e.workspace for e in many] == ["acme-async"]


def test_a_store_that_overrides_append_is_never_bypassed(tmp_path: Any) -> None:
    """One write method: a subclass's ``append`` (instrumentation, fault injection) runs on
    every publish; returning None, it only loses the stored-copy answer."""
    calls: list[int] = []

    class Counting(SQLiteStore):
        def append(self, rows: Any, *, expected_revision: int | None = None) -> None:  # type: ignore[override]
            calls.append(len(rows))
            super().append(rows, expected_revision=expected_revision)

    uid = new_uid()
    with AuditLog(Counting(tmp_path / "counting.db")) as log:
        log.publish_audit_log(_first(uid))
        again = log.publish_many([_other(uid)])
        assert calls == [1, 1]
        assert again[0].id == "monitor:2"  # as submitted: this override does not say
        assert log.event(uid).id == "monitor:1"
