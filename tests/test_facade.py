"""The AuditLog / AsyncAuditLog facades, the action registry and the codec."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from pydantic import BaseModel

from auditbird import (
    ActionRegistry,
    AsyncAuditLog,
    AuditLog,
    AuditValidationError,
    ConflictError,
    Event,
    action,
    upcaster,
)
from auditbird.codec import decode, encode
from auditbird.projections import Projection, on
from auditbird.stores.base import Row


async def test_async_log_has_the_same_methods(db_path: Path) -> None:
    async with AsyncAuditLog(f"sqlite:///{db_path}") as log:
        stored = await log.publish_audit_log({"id": "monitor:1", "action": "monitor.down"})
        many = await log.publish_many(
            [{"id": "monitor:1", "action": "a.b", "timestamp": stored.timestamp + i + 1} for i in range(3)]
        )
        history = await log.get_audit_log(event_id="monitor:1")
        assert [e.uid for e in history] == [e.uid for e in reversed(many)] + [stored.uid]
        page = await log.list(limit=2)
        assert len(page) == 2 and page.next_cursor
        rest = await log.list(limit=2, cursor=page.next_cursor)
        assert len(rest) == 2 and rest.next_cursor is None
        assert [e.uid async for e in log.iter_events(page_size=3)] == [e.uid for e in history]
        assert (await log.get(stored.uid)) == stored
        assert await log.revision("monitor:1") == 4
        with pytest.raises(ConflictError):
            await log.publish_audit_log({"id": "monitor:1", "action": "a.b"}, expected_revision=3)
        with pytest.raises(AuditValidationError):
            await log.publish_audit_log({"id": "monitor:1", "action": "bad"})


async def test_async_publishes_run_concurrently_without_loss(db_path: Path) -> None:
    async with AsyncAuditLog(f"sqlite:///{db_path}") as log:
        await asyncio.gather(*(log.publish_audit_log({"id": "c:1", "action": "a.b"}) for _ in range(50)))
        assert len(await log.get_audit_log("c:1")) == 50


def test_upcasters_turn_old_rows_into_the_newest_shape(registry: ActionRegistry) -> None:
    @action("monitor.failed", registry=registry)
    class FailedV1(BaseModel):
        region: str
        error: str

    row = encode(Event(id="m:1", action="monitor.failed", metadata=FailedV1(region="gru", error="timeout")))

    @action("monitor.failed", version=2, registry=registry)
    class FailedV2(BaseModel):
        regions: list[str]
        message: str

    @upcaster("monitor.failed", from_version=1, registry=registry)
    def v1_to_v2(m: dict) -> dict:
        return {"regions": [m["region"]], "message": m["error"]}

    event = decode(row, registry)
    assert event.version == 2 and event.metadata == FailedV2(regions=["gru"], message="timeout")
    assert json.loads(row.metadata or "") == {"region": "gru", "error": "timeout"}  # stored row unchanged


def test_a_row_no_tool_could_parse_is_still_returned_marked(registry: ActionRegistry) -> None:
    row = Row("u1", "", "m:1", "a.b", "{not json", "[]", '{"x": 1}', 1, 1)
    event = decode(row, registry)
    assert event.uid == "u1" and event.schema_error and "event model" in event.schema_error


def test_seed_example_through_the_catalog(tmp_path: Path) -> None:
    import auditbird.catalog.openstatus as catalog

    with AuditLog(f"sqlite:///{tmp_path / 'seed.db'}") as audit_log:
        audit_log.publish_audit_log(
            {
                "id": "monitor:1",
                "action": "monitor.down",
                "targets": [{"id": "1", "type": "monitor"}],
                "metadata": {"region": "gru", "statusCode": 400, "message": "timeout"},
            }
        )
        [event] = audit_log.get_audit_log(event_id="monitor:1")
    assert isinstance(event.metadata, catalog.MonitorDown)
    assert event.metadata.statusCode == 400 and event.actor.name == "system" and event.version == 1
    stored = (
        sqlite3.connect(tmp_path / "seed.db")
        .execute("SELECT actor, targets, metadata FROM audit_log")
        .fetchone()
    )
    assert stored == (
        '{"id":"","name":"system"}',
        '[{"id":"1","type":"monitor"}]',
        '{"region":"gru","statusCode":400,"message":"timeout"}',
    )


def test_registering_a_different_model_under_a_taken_version_is_refused(registry: ActionRegistry) -> None:
    @action("x.y", registry=registry)
    class A(BaseModel):
        a: int

    with pytest.raises(ValueError, match="version 2"):

        @action("x.y", registry=registry)
        class B(BaseModel):
            b: int

    with pytest.raises(ValueError, match="resource.verb"):
        registry.register("nodot", A)


async def test_async_log_offers_the_event_sourcing_methods(db_path: Path) -> None:
    from auditbird.projections import Projection, on

    class Counter(Projection):
        downs: int = 0

        @on("monitor.down")
        def _down(self, event: Event) -> None:
            self.downs += 1

    async with AsyncAuditLog(f"sqlite:///{db_path}") as log:
        await log.publish_many([{"id": "m:1", "action": "monitor.down"} for _ in range(3)])
        created = await log.publish_change("monitor.created", "m:2", after={"name": "api"})
        assert created is not None and created.to_dict()["metadata"]["after"] == {"name": "api"}
        assert (await log.project("m:1", Counter)).downs == 3
        assert [e.action async for e in log.history("m:1")] == ["monitor.down"] * 3


class _Downs(Projection):
    downs: int = 0

    @on("monitor.down")
    def _down(self, event: Event) -> None:
        self.downs += 1


def _sync_answers(log: AuditLog, t0: int) -> dict[str, object]:
    """Every public method of the sync log, once, with what it answered (uids and counts)."""
    out: dict[str, object] = {}
    first = log.publish_audit_log({"id": "monitor:1", "action": "monitor.down", "timestamp": t0})
    out["publish_audit_log"] = first.uid
    out["publish"] = log.publish({"id": "monitor:1", "action": "monitor.down", "timestamp": t0 + 1}).uid
    out["publish_many"] = [
        e.uid for e in log.publish_many([{"id": "monitor:2", "action": "a.b", "timestamp": t0 + 2}])
    ]
    change = log.publish_change(
        "monitor.updated", "monitor:1", before={"u": 1}, after={"u": 2}, timestamp=t0 + 3
    )
    out["publish_change"] = change.metadata if change else None
    out["revision"] = log.revision("monitor:1")
    out["get_audit_log"] = [e.uid for e in log.get_audit_log("monitor:1")]
    out["list"] = [e.uid for e in log.list(limit=2)]
    out["iter_events"] = [e.uid for e in log.iter_events(page_size=1)]
    out["get"] = log.get(first.uid) == first
    out["event"] = log.event(first.uid) == first
    out["histogram"] = log.histogram(buckets=1, since=t0, until=t0 + 10).total()
    out["history"] = [e.uid for e in log.history("monitor:1", page_size=1)]
    out["project"] = log.project("monitor:1", _Downs).downs
    out["snapshot"] = log.snapshot("monitor:1", _Downs).revision
    out["snapshots"] = log.snapshots is not None
    out["follow"] = [r.position for r in log.follow(idle_timeout=0)]
    out["prove"] = log.prove(first.uid).index
    out["consistency"] = log.consistency(1).new
    out["checkpoint"] = log.checkpoint().splitlines()[1]  # the tree size
    log.close()
    out["close"] = True
    return out


async def _async_answers(log: AsyncAuditLog, t0: int) -> dict[str, object]:
    out: dict[str, object] = {}
    first = await log.publish_audit_log({"id": "monitor:1", "action": "monitor.down", "timestamp": t0})
    out["publish_audit_log"] = first.uid
    out["publish"] = (
        await log.publish({"id": "monitor:1", "action": "monitor.down", "timestamp": t0 + 1})
    ).uid
    many = await log.publish_many([{"id": "monitor:2", "action": "a.b", "timestamp": t0 + 2}])
    out["publish_many"] = [e.uid for e in many]
    change = await log.publish_change(
        "monitor.updated", "monitor:1", before={"u": 1}, after={"u": 2}, timestamp=t0 + 3
    )
    out["publish_change"] = change.metadata if change else None
    out["revision"] = await log.revision("monitor:1")
    out["get_audit_log"] = [e.uid for e in await log.get_audit_log("monitor:1")]
    out["list"] = [e.uid for e in await log.list(limit=2)]
    out["iter_events"] = [e.uid async for e in log.iter_events(page_size=1)]
    out["get"] = (await log.get(first.uid)) == first
    out["event"] = (await log.event(first.uid)) == first
    out["histogram"] = (await log.histogram(buckets=1, since=t0, until=t0 + 10)).total()
    out["history"] = [e.uid async for e in log.history("monitor:1", page_size=1)]
    out["project"] = (await log.project("monitor:1", _Downs)).downs
    out["snapshot"] = (await log.snapshot("monitor:1", _Downs)).revision
    out["snapshots"] = log.snapshots is not None
    out["follow"] = [r.position async for r in log.follow(idle_timeout=0)]
    out["prove"] = (await log.prove(first.uid)).index
    out["consistency"] = (await log.consistency(1)).new
    out["checkpoint"] = (await log.checkpoint()).splitlines()[1]
    await log.close()
    out["close"] = True
    return out


def test_every_async_method_answers_as_its_sync_twin(tmp_path: Path) -> None:
    """The README's "same methods as coroutines", run: every public method of both facades,
    over two SQLite files with the same events (uids differ, so compare shapes and counts)."""
    t0 = 1_767_225_600_000
    sync = _sync_answers(AuditLog(f"sqlite:///{tmp_path / 'sync.db'}"), t0)
    async_ = asyncio.run(_async_answers(AsyncAuditLog(f"sqlite:///{tmp_path / 'async.db'}"), t0))
    public = {n for n in dir(AuditLog) if not n.startswith("_")} - {
        "store",
        "registry",
        "workspace",
        "strict",
        "limits",
    }
    assert set(sync) == set(async_) == public  # a new method must join this test
    for name in sync:
        a, b = sync[name], async_[name]
        if isinstance(a, str):  # a uid: each log made its own
            assert isinstance(b, str) and b, name
        elif isinstance(a, list) and a and isinstance(a[0], str):
            assert len(a) == len(b), name  # type: ignore[arg-type]
        else:
            assert a == b, name
    assert sync["follow"] == [1, 2, 3, 4] and sync["project"] == 2 and sync["histogram"] == 4
