"""Bad input gets a clear error naming the field, and nothing is stored."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import BaseModel

from auditbird import ActionRegistry, AuditLog, AuditValidationError, Limits, action


@pytest.fixture
def log(db_path, registry: ActionRegistry) -> AuditLog:
    @action("monitor.down", registry=registry)
    class MonitorDown(BaseModel):
        region: str
        statusCode: int
        message: str | None = None

    with AuditLog(f"sqlite:///{db_path}", registry=registry) as log:
        yield log


def problems(exc: pytest.ExceptionInfo[AuditValidationError]) -> dict[str, str]:
    return {p.loc: p.msg for p in exc.value.problems}


def assert_nothing_stored(log: AuditLog) -> None:
    assert log.list(limit=10).events == []


@pytest.mark.parametrize(
    ("event", "field", "words"),
    [
        ({"action": "monitor.down"}, "id", "required"),
        ({"id": "", "action": "a.b"}, "id", "at least 1"),
        ({"id": "   ", "action": "a.b"}, "id", "blank"),
        ({"id": "m:1"}, "action", "required"),
        ({"id": "m:1", "action": ""}, "action", "at least"),
        ({"id": "m:1", "action": "monitordown"}, "action", "resource.verb"),
        ({"id": "m:1", "action": "monitor down"}, "action", "resource.verb"),
        ({"id": "m:1", "action": "a.b", "timestamp": "yesterday"}, "timestamp", "integer"),
        ({"id": "m:1", "action": "a.b", "timestamp": 1.5}, "timestamp", "integer"),
        ({"id": "m:1", "action": "a.b", "timestamp": True}, "timestamp", "integer"),
        ({"id": "m:1", "action": "a.b", "timestamp": -1}, "timestamp", "greater than or equal"),
        ({"id": "m:1", "action": "a.b", "timestamp": 10**16}, "timestamp", "less than or equal"),
        ({"id": "m:1", "action": "a.b", "version": 0}, "version", "greater than or equal"),
        ({"id": "m:1", "action": "a.b", "metadata": [1, 2]}, "metadata", "JSON object"),
        ({"id": "m:1", "action": "a.b", "metadata": {"at": dt.datetime(2026, 1, 1)}}, "metadata.at", "JSON"),
        ({"id": "m:1", "action": "a.b", "metadata": {"x": {1, 2}}}, "metadata.x", "JSON-serialisable"),
        ({"id": "m:1", "action": "a.b", "metadata": {"x": float("nan")}}, "metadata.x", "finite"),
        ({"id": "m:1", "action": "a.b", "targets": [{"id": "1"}]}, "targets.0", "type"),
        ({"id": "m:1", "action": "a.b", "targets": [{"type": "monitor"}]}, "targets.0.id", "required"),
        ({"id": "m:1", "action": "a.b", "actor": "bob"}, "actor", "dictionary"),
        ({"id": "m:1", "action": "a.b", "colour": "red"}, "colour", "unknown field"),
        (
            {"id": "m:1", "action": "monitor.down", "metadata": {"region": "gru", "statusCode": "abc"}},
            "metadata.statusCode",
            "integer",
        ),
        (
            {"id": "m:1", "action": "monitor.down", "metadata": {"statusCode": 500}},
            "metadata.region",
            "required",
        ),
        (
            {"id": "m:1", "action": "monitor.down", "version": 3, "metadata": {}},
            "version",
            "no schema version 3",
        ),
    ],
)
def test_bad_event_is_rejected_naming_the_field(log: AuditLog, event, field: str, words: str) -> None:
    with pytest.raises(AuditValidationError) as info:
        log.publish_audit_log(event)
    found = problems(info)
    assert field in found, found
    assert words.lower() in found[field].lower(), found
    assert isinstance(info.value, ValueError)
    assert_nothing_stored(log)


def test_every_bad_field_is_listed_at_once(log: AuditLog) -> None:
    with pytest.raises(AuditValidationError) as info:
        log.publish_audit_log(
            {
                "id": "",
                "action": "monitor.down",
                "metadata": {"region": 5, "statusCode": "x"},
                "timestamp": "t",
            }
        )
    assert set(problems(info)) == {"id", "timestamp", "metadata.region", "metadata.statusCode"}


def test_metadata_limits_follow_workos_by_default(log: AuditLog) -> None:
    cases = {
        "metadata": {f"k{i}": i for i in range(51)},
        "metadata.note": {"note": "x" * 501},
        "metadata." + "k" * 20 + "…": {"k" * 41: 1},
        "metadata.deep.note": {"deep": {"note": "y" * 600}},
    }
    for loc, metadata in cases.items():
        with pytest.raises(AuditValidationError) as info:
            log.publish_audit_log({"id": "m:1", "action": "free.form", "metadata": metadata})
        assert loc in problems(info), (loc, problems(info))
    # exactly at the limits is fine
    ok = {f"k{i}": "x" * 500 for i in range(50)} | {}
    log.publish_audit_log({"id": "m:1", "action": "free.form", "metadata": ok})
    assert len(log.list(limit=10).events) == 1


def test_limits_are_configurable(db_path) -> None:
    with AuditLog(f"sqlite:///{db_path}", limits=Limits(max_string_length=10, max_keys=2)) as log:
        with pytest.raises(AuditValidationError) as info:
            log.publish_audit_log({"id": "m:1", "action": "a.b", "metadata": {"s": "x" * 11}})
        assert "at most 10" in problems(info)["metadata.s"]
        with pytest.raises(AuditValidationError):
            log.publish_audit_log({"id": "m:1", "action": "a.b", "metadata": {"a": 1, "b": 2, "c": 3}})


def test_batch_error_names_the_index_and_stores_nothing(log: AuditLog) -> None:
    good = {"id": "m:1", "action": "monitor.down", "metadata": {"region": "gru", "statusCode": 500}}
    bad = {"id": "m:1", "action": "monitor.down", "metadata": {"region": "gru", "statusCode": "abc"}}
    with pytest.raises(AuditValidationError) as info:
        log.publish_many([good, good, bad, good, {"id": "m:2"}])
    assert [(p.index, p.loc) for p in info.value.problems] == [(2, "metadata.statusCode"), (4, "action")]
    assert "[2].metadata.statusCode" in str(info.value)
    assert_nothing_stored(log)


def test_strict_log_rejects_unregistered_actions(db_path, registry: ActionRegistry) -> None:
    with AuditLog(f"sqlite:///{db_path}", strict=True, registry=registry) as log:
        with pytest.raises(AuditValidationError) as info:
            log.publish_audit_log({"id": "m:1", "action": "monitor.exploded"})
        assert "not a registered action" in problems(info)["action"]
        assert_nothing_stored(log)


def test_unregistered_action_carries_any_json_object(log: AuditLog) -> None:
    metadata = {"nested": {"list": [1, "two", None, 3.5, True]}, "n": 1}
    stored = log.publish_audit_log({"id": "m:1", "action": "anything.goes", "metadata": metadata})
    [read] = log.get_audit_log("m:1")
    assert read.metadata == metadata == stored.metadata


def test_registered_metadata_is_typed_and_defaults_version(log: AuditLog, registry: ActionRegistry) -> None:
    @action("monitor.down", version=2, registry=registry)
    class MonitorDownV2(BaseModel):
        region: str
        statusCode: int
        regions: list[str] = []

    event = log.publish_audit_log(
        {"id": "m:1", "action": "monitor.down", "metadata": {"region": "ams", "statusCode": 503}}
    )
    assert event.version == 2 and isinstance(event.metadata, MonitorDownV2)
    old = log.publish_audit_log(
        {
            "id": "m:1",
            "action": "monitor.down",
            "version": 1,
            "metadata": {"region": "ams", "statusCode": 503},
        }
    )
    assert old.version == 1 and type(old.metadata).__name__ == "MonitorDown"


def test_a_scoped_log_forces_its_workspace(db_path) -> None:
    with AuditLog(f"sqlite:///{db_path}", workspace="acme") as log:
        assert log.publish_audit_log({"id": "m:1", "action": "a.b"}).workspace == "acme"
        assert log.publish_audit_log({"id": "m:1", "action": "a.b", "workspace": "acme"}).workspace == "acme"
        with pytest.raises(AuditValidationError) as info:
            log.publish_many(
                [{"id": "m:1", "action": "a.b"}, {"id": "m:2", "action": "a.b", "workspace": "evil"}]
            )
        assert [(p.index, p.loc) for p in info.value.problems] == [(1, "workspace")]
        assert len(log.list()) == 2


def test_bad_list_arguments_are_validation_errors(log: AuditLog) -> None:
    for kwargs, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"since": "last tuesday"}, "since"),
        ({"since": "99999999999999999999999"}, "since"),
        ({"until": 10**30}, "until"),
        ({"cursor": "WzEwMDAwMDAwMDAwMDAwMDAwMDAwMDAwLCJ4Il0"}, "cursor"),
    ]:
        with pytest.raises(AuditValidationError) as info:
            log.list(**kwargs)
        assert field in problems(info)


def test_text_that_is_not_unicode_is_a_validation_error(log: AuditLog) -> None:
    with pytest.raises(AuditValidationError) as info:
        log.publish_audit_log({"id": "m:\ud800", "action": "a.b"})
    assert "unicode" in problems(info)["id"].lower()
    with pytest.raises(AuditValidationError) as info:
        log.publish_many(
            [{"id": "m:1", "action": "a.b"}, {"id": "m:1", "action": "a.b", "metadata": {"x": "\udfff"}}]
        )
    assert [(p.index, p.loc) for p in info.value.problems] == [(1, "metadata")]
    assert_nothing_stored(log)
