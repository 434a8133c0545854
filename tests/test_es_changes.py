"""Change tracking: before/after snapshots, the changed fields, secrets never stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import BaseModel

from auditbird import AuditLog, AuditValidationError, Query
from auditbird.changes import MASK, ChangeSet
from tests.es_support import OPENSTATUS

MONITOR = {"name": "api", "url": "https://api.example.com", "periodicity": "1m", "regions": ["gru"]}


@pytest.fixture
def sqlite_log(db_path: Path) -> Iterator[AuditLog]:
    """A log over a real file, reading and writing with the OpenStatus catalog's schemas."""
    with AuditLog(f"sqlite:///{db_path}", registry=OPENSTATUS) as log:
        yield log


def test_update_stores_before_after_and_the_changed_fields(sqlite_log: AuditLog) -> None:
    after = {**MONITOR, "periodicity": "30s", "regions": ["gru", "ams"]}
    event = sqlite_log.publish_change(
        "monitor.updated", "monitor:1", before=MONITOR, after=after, actor={"id": "7", "name": "mxkaske"}
    )
    assert event is not None
    [stored] = sqlite_log.get_audit_log("monitor:1")
    assert stored.metadata.model_dump() == {
        "before": MONITOR,
        "after": after,
        "changed": ["periodicity", "regions"],
    }
    assert stored.actor.name == "mxkaske"
    assert stored.to_dict()["targets"] == [{"id": "1", "type": "monitor"}]


def test_the_metadata_has_exactly_the_three_keys_the_viewer_reads(sqlite_log: AuditLog) -> None:
    sqlite_log.publish_change("monitor.created", "monitor:1", after=MONITOR)
    [row] = sqlite_log.store.query(Query(event_id="monitor:1"))
    assert row.metadata is not None
    stored = json.loads(row.metadata)
    assert stored == {"before": None, "after": MONITOR, "changed": sorted(MONITOR)}


def test_an_update_that_changes_nothing_is_not_recorded(sqlite_log: AuditLog) -> None:
    assert (
        sqlite_log.publish_change("monitor.updated", "monitor:1", before=MONITOR, after=dict(MONITOR)) is None
    )
    assert sqlite_log.get_audit_log("monitor:1") == []


@pytest.mark.parametrize(
    ("action", "kwargs", "missing"),
    [
        ("monitor.created", {"before": MONITOR}, "after"),
        ("monitor.deleted", {"after": MONITOR}, "before"),
        ("monitor.updated", {"after": MONITOR}, "before"),
        ("monitor.updated", {"before": MONITOR}, "after"),
        ("page.update", {}, "before"),
    ],
)
def test_each_kind_of_change_needs_its_snapshots(
    sqlite_log: AuditLog, action: str, kwargs: dict, missing: str
) -> None:
    with pytest.raises(AuditValidationError) as info:
        sqlite_log.publish_change(action, "monitor:1", **kwargs)
    assert missing in [p.loc for p in info.value.problems]
    assert sqlite_log.get_audit_log("monitor:1") == []


def test_delete_keeps_the_last_state(sqlite_log: AuditLog) -> None:
    sqlite_log.publish_change("monitor.deleted", "monitor:1", before=MONITOR)
    [stored] = sqlite_log.get_audit_log("monitor:1")
    assert isinstance(stored.metadata, ChangeSet)
    assert stored.metadata.model_dump() == {"before": MONITOR, "after": None, "changed": sorted(MONITOR)}


def test_secrets_are_masked_and_dropped_fields_never_stored(sqlite_log: AuditLog) -> None:
    before = {
        **MONITOR,
        "headers": {"Authorization": "Bearer s3cret", "Accept": "*/*"},
        "apiKey": "k1",
        "body": "x",
    }
    after = {
        **before,
        "apiKey": "k2",
        "body": "y",
        "webhook": {"url": "https://hooks", "signing_secret": "zz"},
    }
    sqlite_log.publish_change(
        "monitor.updated", "monitor:1", before=before, after=after, mask=["webhook.url"], drop=["body"]
    )
    [row] = sqlite_log.store.query(Query(event_id="monitor:1"))
    assert row.metadata is not None
    for secret in ("s3cret", "k1", "k2", "zz", "https://hooks", '"body"'):
        assert secret not in row.metadata
    stored = json.loads(row.metadata)
    assert stored["after"]["headers"] == {"Authorization": MASK, "Accept": "*/*"}
    assert stored["after"]["webhook"] == {"url": MASK, "signing_secret": MASK}
    # A rotated key shows as changed (both sides masked); a dropped field is not mentioned at all.
    assert stored["changed"] == ["apiKey", "webhook"]
    assert stored["before"]["apiKey"] == stored["after"]["apiKey"] == MASK


def test_snapshots_may_be_pydantic_models_or_dataclasses(sqlite_log: AuditLog) -> None:
    class MonitorModel(BaseModel):
        name: str
        active: bool = True

    @dataclass
    class MonitorRecord:
        name: str
        active: bool = True

    sqlite_log.publish_change(
        "monitor.updated", "monitor:2", before=MonitorModel(name="a"), after=MonitorRecord("a", False)
    )
    [stored] = sqlite_log.get_audit_log("monitor:2")
    assert stored.metadata.changed == ["active"]
    assert stored.metadata.after == {"name": "a", "active": False}


def test_publish_change_honours_expected_revision(sqlite_log: AuditLog) -> None:
    from auditbird import ConflictError

    sqlite_log.publish_change("monitor.created", "monitor:1", after=MONITOR, expected_revision=0)
    with pytest.raises(ConflictError):
        sqlite_log.publish_change("monitor.deleted", "monitor:1", before=MONITOR, expected_revision=0)
    assert [e.action for e in sqlite_log.history("monitor:1")] == ["monitor.created"]
