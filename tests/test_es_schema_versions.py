"""Schema versions: ``monitor.failed`` v2 beside v1, upcast on read; old files stay readable."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from auditbird import ActionRegistry, AuditLog, Query, action, upcaster
from auditbird.projections import Projection, on
from tests.es_support import MonitorFailed, MonitorRecovered

V1_FILE = Path(__file__).parent / "data" / "openstatus-v1.db"


class MonitorFailedV2(BaseModel):
    """v2: a failure names its regions (a check may fail in several) and always has a reason."""

    regions: list[str]
    statusCode: int | None = None
    reason: str


def v2_registry() -> ActionRegistry:
    registry = ActionRegistry()
    action("monitor.failed", registry=registry)(MonitorFailed)
    action("monitor.failed", version=2, registry=registry)(MonitorFailedV2)
    action("monitor.recovered", registry=registry)(MonitorRecovered)

    @upcaster("monitor.failed", from_version=1, registry=registry)
    def _v1_to_v2(meta: dict[str, Any]) -> dict[str, Any]:
        return {
            "regions": [meta.pop("region")],
            "statusCode": meta.pop("statusCode", None),
            "reason": meta.pop("message", None) or "unknown",
        }

    return registry


class FailuresV2(Projection):
    failed_regions: list[str] = []
    reasons: list[str] = []

    @on("monitor.failed")
    def _failed(self, event: Any) -> None:
        meta: MonitorFailedV2 = event.metadata
        self.failed_regions = [*self.failed_regions, *meta.regions]
        self.reasons = [*self.reasons, meta.reason]


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    copy = tmp_path / "openstatus-v1.db"
    shutil.copy(V1_FILE, copy)  # opening migrates the file: never touch the committed one
    return copy


def test_a_file_written_before_v2_reads_as_v2(old_file: Path) -> None:
    with AuditLog(f"sqlite:///{old_file}", registry=v2_registry()) as log:
        history = list(log.history("monitor:1"))
    assert [(e.action, e.version) for e in history] == [
        ("monitor.failed", 2),
        ("monitor.failed", 2),
        ("monitor.recovered", 1),
        ("monitor.failed", 2),
    ]
    assert all(e.schema_error is None for e in history)
    assert history[0].metadata == MonitorFailedV2(regions=["gru"], statusCode=504, reason="timeout after 30s")
    assert history[1].metadata == MonitorFailedV2(regions=["ams"], reason="connection refused")
    assert history[3].metadata == MonitorFailedV2(regions=["iad"], reason="unknown")


def test_the_stored_rows_keep_what_was_written(old_file: Path) -> None:
    with AuditLog(f"sqlite:///{old_file}", registry=v2_registry()) as log:
        list(log.history("monitor:1"))
        log.publish_audit_log(
            {"id": "monitor:1", "action": "monitor.failed", "metadata": {"regions": ["fra"], "reason": "dns"}}
        )
        rows = log.store.query(Query(event_id="monitor:1", order="position", limit=None))
    assert [(r.version, r.metadata) for r in rows] == [
        (1, '{"region":"gru","statusCode":504,"message":"timeout after 30s"}'),
        (1, '{"region":"ams","message":"connection refused"}'),
        (1, '{"region":"gru","statusCode":200,"latency":180}'),
        (1, '{"region":"iad"}'),
        (2, '{"regions":["fra"],"reason":"dns"}'),  # new writes default to the newest version
    ]


def test_the_old_file_reads_unchanged_without_v2(old_file: Path) -> None:
    registry = ActionRegistry()
    action("monitor.failed", registry=registry)(MonitorFailed)
    with AuditLog(f"sqlite:///{old_file}", registry=registry) as log:
        [newest, *_] = log.get_audit_log("monitor:1")
    assert newest.version == 1 and newest.metadata == MonitorFailed(region="iad")


def test_the_committed_fixture_is_untouched_v1() -> None:
    conn = sqlite3.connect(f"file:{V1_FILE}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT DISTINCT version FROM audit_log").fetchall() == [(1,)]
    finally:
        conn.close()


def test_a_failing_upcaster_marks_the_event_instead_of_breaking_the_read(old_file: Path) -> None:
    registry = ActionRegistry()
    action("monitor.failed", registry=registry)(MonitorFailed)
    action("monitor.failed", version=2, registry=registry)(MonitorFailedV2)
    upcaster("monitor.failed", from_version=1, registry=registry)(lambda meta: meta["no such key"])
    with AuditLog(f"sqlite:///{old_file}", registry=registry) as log:
        history = list(log.history("monitor:1"))
    assert len(history) == 4
    assert (
        history[0].schema_error is not None and "upcaster monitor.failed v1 failed" in history[0].schema_error
    )
    assert history[0].metadata == {"region": "gru", "statusCode": 504, "message": "timeout after 30s"}


def test_projections_see_the_newest_shape(old_file: Path) -> None:
    """A projection written against v2 folds v1 events, upcast on the way in."""
    registry = v2_registry()
    with AuditLog(f"sqlite:///{old_file}", registry=registry) as log:
        state = log.project("monitor:1", FailuresV2, snapshots=False)
    assert state.failed_regions == ["gru", "ams", "iad"]
    assert state.reasons == ["timeout after 30s", "connection refused", "unknown"]
    assert state.revision == 4
