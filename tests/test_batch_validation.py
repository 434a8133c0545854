"""``publish_many`` validates a batch per action in one pydantic-core call, and still names
the index and field of every bad event; ``Event`` objects the caller built are not validated
again, unless they skipped pydantic (``model_construct``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from auditbird import ActionRegistry, AuditLog, AuditValidationError, Event
from auditbird.codec import encode, encode_many
from auditbird.event import MAX_TIMESTAMP, Actor, Target, within_bounds
from auditbird.validation import validate_events


@pytest.fixture
def registry() -> ActionRegistry:
    reg = ActionRegistry()

    class MonitorDown(BaseModel):
        region: str
        statusCode: int  # noqa: N815 - the seed's field name

    class UserLogin(BaseModel):
        ip: str

    reg.register("monitor.down", MonitorDown)
    reg.register("user.login", UserLogin)
    return reg


def good(i: int) -> dict[str, object]:
    if i % 2:
        return {"id": f"u:{i}", "action": "user.login", "metadata": {"ip": "10.0.0.1"}}
    return {"id": f"m:{i}", "action": "monitor.down", "metadata": {"region": "gru", "statusCode": 500}}


def test_a_mixed_batch_validates_each_event_against_its_own_action(registry: ActionRegistry) -> None:
    events = validate_events([good(i) for i in range(10)], registry)
    assert [e.id for e in events] == [f"{'u' if i % 2 else 'm'}:{i}" for i in range(10)]
    assert type(events[0].metadata).__name__ == "MonitorDown" and events[0].metadata.statusCode == 500
    assert type(events[1].metadata).__name__ == "UserLogin"
    assert len({e.uid for e in events}) == 10  # defaults are filled per event


def test_batch_errors_name_the_event_index_and_the_field(registry: ActionRegistry) -> None:
    batch = [good(i) for i in range(12)]
    batch[3] = {"id": "u:3", "action": "user.login", "metadata": {"ip": 7}}  # metadata field
    batch[6] = {"id": "m:6", "action": "monitor.down", "metadata": {"region": "gru"}}  # missing field
    batch[8] = {"id": " ", "action": "monitor.down", "metadata": {"region": "x", "statusCode": 1}}  # envelope
    batch[10] = {"id": "m:10", "action": "not an action"}
    with pytest.raises(AuditValidationError) as raised:
        validate_events(batch, registry)
    found = sorted((p.index, p.loc) for p in raised.value.problems)
    assert found == [(3, "metadata.ip"), (6, "metadata.statusCode"), (8, "id"), (10, "action")]
    assert "resource.verb" in next(p.msg for p in raised.value.problems if p.index == 10)


def test_a_bad_event_reports_envelope_and_metadata_problems_together(registry: ActionRegistry) -> None:
    batch = [good(0), {"id": "", "action": "monitor.down", "metadata": {"region": 1, "statusCode": 2}}]
    with pytest.raises(AuditValidationError) as raised:
        validate_events(batch, registry)
    assert sorted((p.index, p.loc) for p in raised.value.problems) == [(1, "id"), (1, "metadata.region")]


def test_a_rejected_batch_stores_nothing(tmp_path: Path, registry: ActionRegistry) -> None:
    with AuditLog(f"sqlite:///{tmp_path / 'a.db'}", registry=registry) as log:
        batch = [good(i) for i in range(1000)]
        batch[999] = {
            "id": "m:999",
            "action": "monitor.down",
            "metadata": {"region": "gru", "statusCode": "x"},
        }
        with pytest.raises(AuditValidationError) as raised:
            log.publish_many(batch)
        assert [(p.index, p.loc) for p in raised.value.problems] == [(999, "metadata.statusCode")]
        assert log.list().events == []


def test_events_the_caller_built_are_stored_as_they_are(tmp_path: Path, registry: ActionRegistry) -> None:
    model = registry.get("monitor.down", 1)
    assert model is not None
    built = [
        Event(id=f"m:{i}", action="monitor.down", metadata=model(region="gru", statusCode=i))
        for i in range(5)
    ]
    checked = validate_events(built, registry)
    assert all(a is b for a, b in zip(checked, built, strict=True))  # not validated again
    with AuditLog(f"sqlite:///{tmp_path / 'a.db'}", registry=registry) as log:
        stored = log.publish_many(built)
        assert [e.uid for e in stored] == [e.uid for e in built]
        assert sorted(e.metadata.statusCode for e in log.list().events) == [0, 1, 2, 3, 4]  # type: ignore[union-attr]


def test_a_built_event_with_plain_metadata_is_validated_against_its_action(registry: ActionRegistry) -> None:
    loose = Event(id="m:1", action="monitor.down", metadata={"region": "gru", "statusCode": "500"})
    (event,) = validate_events([loose], registry)
    assert type(event.metadata).__name__ == "MonitorDown" and event.metadata.statusCode == 500
    with pytest.raises(AuditValidationError) as raised:
        validate_events([loose.model_copy(update={"metadata": {"region": "gru"}})], registry)
    assert [(p.index, p.loc) for p in raised.value.problems] == [(0, "metadata.statusCode")]


@pytest.mark.parametrize(
    "update, field",
    [
        ({"action": "not an action"}, "action"),
        ({"id": ""}, "id"),
        ({"uid": "a b"}, "uid"),
        ({"timestamp": -1}, "timestamp"),
        ({"id": "x" * 300}, "id"),
    ],
)
def test_an_event_that_skipped_pydantic_is_validated_again(
    registry: ActionRegistry, update: dict[str, object], field: str
) -> None:
    fields = {**Event(id="m:1", action="a.b").__dict__, **update}
    constructed = Event.model_construct(**fields)
    with pytest.raises(AuditValidationError) as raised:
        validate_events([Event(id="ok", action="a.b"), constructed], registry)
    assert [(p.index, p.loc) for p in raised.value.problems] == [(1, field)]


def test_a_built_event_outside_the_logs_workspace_is_refused(registry: ActionRegistry) -> None:
    with pytest.raises(AuditValidationError) as raised:
        validate_events([Event(id="m:1", action="a.b", workspace="other")], registry, workspace="mine")
    assert [(p.index, p.loc) for p in raised.value.problems] == [(0, "workspace")]


def test_a_batch_encodes_to_the_rows_each_event_encodes_to(registry: ActionRegistry) -> None:
    events = validate_events([good(i) for i in range(6)], registry)
    events.append(Event(id="t:1", action="a.b", targets=[{"id": "1", "name": "seed"}], metadata={"ü": [1.5]}))
    assert encode_many(events) == [encode(e) for e in events]


def test_a_batch_that_cannot_be_encoded_names_the_event_and_field(tmp_path: Path) -> None:
    batch = [
        {"id": "m:1", "action": "a.b"},
        {"id": "m:\ud800", "action": "a.b"},
        {"id": "m:3", "action": "a.b"},
    ]
    with AuditLog(f"sqlite:///{tmp_path / 'a.db'}") as log:
        with pytest.raises(AuditValidationError) as raised:
            log.publish_many(batch)
        assert [(p.index, p.loc) for p in raised.value.problems] == [(1, "id")]
        assert log.list().events == []


# (field, value, whether the quick check must accept it: the model does, and it is no edge case
# where the quick check is stricter, such as "\x1c", a blank to Python but not to the model)
BOUNDS = [
    ("id", "x" * 256, True),
    ("id", "x" * 257, False),
    ("id", " \t", False),
    ("id", "\x1c", False),
    ("action", "a.b", True),
    ("action", "a.b\n", False),
    ("action", "a." + "b" * 126, True),
    ("action", "a." + "b" * 127, False),
    ("uid", "u" * 128, True),
    ("uid", "u" * 129, False),
    ("uid", "u\n", False),
    ("workspace", "w" * 128, True),
    ("workspace", "w" * 129, False),
    ("workspace", "w\n", False),
    ("timestamp", 0, True),
    ("timestamp", MAX_TIMESTAMP, True),
    ("timestamp", MAX_TIMESTAMP + 1, False),
    ("timestamp", True, False),
    ("version", 1_000_000, True),
    ("version", 1_000_001, False),
    ("version", 0, False),
    ("actor", Actor(id="a" * 256, name="n" * 256, type="t" * 64), True),
    ("actor", Actor.model_construct(id="a" * 257, name="n", type=None), False),
    ("actor", Actor.model_construct(id="a", name="n", type="t" * 65), False),
    ("targets", [Target(id="1", type="t")] * 100, True),
    ("targets", [Target(id="1", type="t")] * 101, False),
    ("targets", [Target.model_construct(id="1", type=None, name=None)], False),
    ("targets", [Target.model_construct(id="", type="t", name=None)], False),
    ("targets", [Target.model_construct(id="1", type="t" * 65, name=None)], False),
    ("targets", [{"id": "1", "type": "t"}], False),
]


def _as_input(fields: dict[str, Any]) -> dict[str, Any]:
    """What ``fields`` are as plain input, for the model to judge."""
    out = {k: v for k, v in fields.items() if k != "schema_error"}
    out["actor"] = out["actor"].__dict__ if isinstance(out["actor"], Actor) else out["actor"]
    out["targets"] = [t.__dict__ if isinstance(t, Target) else t for t in out["targets"]]
    return out


@pytest.mark.parametrize("field, value", [b[:2] for b in BOUNDS])
def test_the_quick_check_never_accepts_what_the_model_refuses(field: str, value: object) -> None:
    fields = {**Event(id="m:1", action="a.b").__dict__, field: value}
    if within_bounds(Event.model_construct(**fields)):
        Event.model_validate(_as_input(fields))  # raises if the model refuses what passed


@pytest.mark.parametrize("field, value", [b[:2] for b in BOUNDS if b[2]])
def test_the_quick_check_accepts_events_at_the_models_bounds(field: str, value: object) -> None:
    fields = {**Event(id="m:1", action="a.b").__dict__, field: value}
    Event.model_validate(_as_input(fields))
    assert within_bounds(Event.model_construct(**fields))
