"""Projections: rebuilt state equals what the example application reached, at any time.

The example application is a tiny OpenStatus: monitors and incidents in its own SQLite tables,
and every change emitted with ``auditbird.emit`` in the same transaction (change events with
before/after for settings, check events for health).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from auditbird import ActionRegistry, AuditLog, action, emit
from auditbird.changes import change_event
from auditbird.event import Event
from auditbird.projections import Projection, ProjectionError, on
from tests.es_support import OPENSTATUS, IncidentState, MonitorState

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
COMPARED = ("name", "url", "periodicity", "regions", "paused", "deleted", "failing_regions")
COMPARED += ("failures", "recoveries", "last_status_code", "open_incident", "incidents")


class ExampleApp:
    """Monitors and incidents in the application's own tables; the audit log rides along."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path)
        self.clock = T0
        with self.conn:
            self.conn.execute(
                "CREATE TABLE monitor (id INTEGER PRIMARY KEY, settings TEXT NOT NULL, "
                "deleted INT DEFAULT 0, failing TEXT DEFAULT '[]', failures INT DEFAULT 0, "
                "recoveries INT DEFAULT 0, last_status_code INT, incidents INT DEFAULT 0, "
                "open_incident INT DEFAULT 0)"
            )
            self.conn.execute(
                "CREATE TABLE incident (id INTEGER PRIMARY KEY, monitor_id INT, status TEXT, acked_by TEXT)"
            )

    def _tick(self) -> int:
        self.clock += 60_000
        return self.clock

    def _settings(self, monitor_id: int) -> dict[str, Any]:
        (text,) = self.conn.execute("SELECT settings FROM monitor WHERE id = ?", (monitor_id,)).fetchone()
        return dict(json.loads(text))

    def create(self, monitor_id: int, **settings: Any) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO monitor (id, settings) VALUES (?, ?)", (monitor_id, json.dumps(settings))
            )
            event = change_event(
                "monitor.created",
                f"monitor:{monitor_id}",
                after=settings,
                actor={"id": "7", "name": "mxkaske"},
            )
            assert event is not None
            emit(self.conn, registry=OPENSTATUS, event={**event, "timestamp": self._tick()})

    def update(self, monitor_id: int, **changes: Any) -> bool:
        with self.conn:
            before = self._settings(monitor_id)
            after = {**before, **changes}
            self.conn.execute("UPDATE monitor SET settings = ? WHERE id = ?", (json.dumps(after), monitor_id))
            event = change_event("monitor.updated", f"monitor:{monitor_id}", before=before, after=after)
            if event is None:
                return False
            emit(self.conn, registry=OPENSTATUS, event={**event, "timestamp": self._tick()})
            return True

    def pause(self, monitor_id: int, active: bool) -> None:
        with self.conn:
            settings = {**self._settings(monitor_id), "active": active}
            self.conn.execute(
                "UPDATE monitor SET settings = ? WHERE id = ?", (json.dumps(settings), monitor_id)
            )
            if active:
                self.conn.execute("UPDATE monitor SET failing = '[]' WHERE id = ?", (monitor_id,))
            action_name = "monitor.resumed" if active else "monitor.paused"
            emit(
                self.conn,
                registry=OPENSTATUS,
                event={"id": f"monitor:{monitor_id}", "action": action_name, "timestamp": self._tick()},
            )

    def check(self, monitor_id: int, region: str, status_code: int | None) -> None:
        ok = status_code is not None and status_code < 400
        with self.conn:
            (failing_text,) = self.conn.execute(
                "SELECT failing FROM monitor WHERE id = ?", (monitor_id,)
            ).fetchone()
            failing = set(json.loads(failing_text))
            if ok:
                if region in failing:
                    self.conn.execute(
                        "UPDATE monitor SET recoveries = recoveries + 1 WHERE id = ?", (monitor_id,)
                    )
                failing.discard(region)
                action_name, meta = "monitor.recovered", {"region": region, "statusCode": status_code}
            else:
                failing.add(region)
                self.conn.execute("UPDATE monitor SET failures = failures + 1 WHERE id = ?", (monitor_id,))
                if status_code is None:
                    action_name, meta = "monitor.failed", {"region": region, "message": "timeout"}
                else:
                    action_name, meta = "monitor.down", {"region": region, "statusCode": status_code}
            self.conn.execute(
                "UPDATE monitor SET failing = ?, last_status_code = ? WHERE id = ?",
                (json.dumps(sorted(failing)), status_code, monitor_id),
            )
            emit(
                self.conn,
                registry=OPENSTATUS,
                event={
                    "id": f"monitor:{monitor_id}",
                    "action": action_name,
                    "metadata": meta,
                    "timestamp": self._tick(),
                },
            )

    def open_incident(self, incident_id: int, monitor_id: int) -> None:
        with self.conn:
            self.conn.execute("INSERT INTO incident VALUES (?, ?, 'open', NULL)", (incident_id, monitor_id))
            self.conn.execute(
                "UPDATE monitor SET incidents = incidents + 1, open_incident = 1 WHERE id = ?", (monitor_id,)
            )
            meta = {"monitorId": str(monitor_id), "cause": "down in every region"}
            for stream in (f"monitor:{monitor_id}", f"incident:{incident_id}"):
                emit(
                    self.conn,
                    registry=OPENSTATUS,
                    event={
                        "id": stream,
                        "action": "incident.created",
                        "metadata": meta,
                        "timestamp": self._tick(),
                    },
                )

    def acknowledge(self, incident_id: int, who: str) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE incident SET status = 'acknowledged', acked_by = ? WHERE id = ?", (who, incident_id)
            )
            emit(
                self.conn,
                registry=OPENSTATUS,
                event={
                    "id": f"incident:{incident_id}",
                    "action": "incident.acknowledged",
                    "actor": {"id": who, "name": who},
                    "timestamp": self._tick(),
                },
            )

    def resolve(self, incident_id: int, monitor_id: int) -> None:
        with self.conn:
            self.conn.execute("UPDATE incident SET status = 'resolved' WHERE id = ?", (incident_id,))
            self.conn.execute("UPDATE monitor SET open_incident = 0 WHERE id = ?", (monitor_id,))
            for stream in (f"monitor:{monitor_id}", f"incident:{incident_id}"):
                emit(
                    self.conn,
                    registry=OPENSTATUS,
                    event={
                        "id": stream,
                        "action": "incident.resolved",
                        "metadata": {"monitorId": str(monitor_id)},
                        "timestamp": self._tick(),
                    },
                )

    def delete(self, monitor_id: int) -> None:
        with self.conn:
            before = self._settings(monitor_id)
            self.conn.execute("UPDATE monitor SET deleted = 1 WHERE id = ?", (monitor_id,))
            event = change_event("monitor.deleted", f"monitor:{monitor_id}", before=before)
            assert event is not None
            emit(self.conn, registry=OPENSTATUS, event={**event, "timestamp": self._tick()})

    def monitor(self, monitor_id: int) -> dict[str, Any]:
        """What the application knows, in the projection's terms."""
        row = self.conn.execute(
            "SELECT settings, deleted, failing, failures, recoveries, last_status_code, incidents, "
            "open_incident FROM monitor WHERE id = ?",
            (monitor_id,),
        ).fetchone()
        settings = json.loads(row[0])
        return {
            "name": settings["name"],
            "url": settings["url"],
            "periodicity": settings["periodicity"],
            "regions": settings["regions"],
            "paused": not settings.get("active", True),
            "deleted": bool(row[1]),
            "failing_regions": json.loads(row[2]),
            "failures": row[3],
            "recoveries": row[4],
            "last_status_code": row[5],
            "incidents": row[6],
            "open_incident": bool(row[7]),
        }


def run_story(app: ExampleApp) -> list[tuple[int, dict[str, Any]]]:
    """The OpenStatus story; returns (time, application state) after every step."""
    seen: list[tuple[int, dict[str, Any]]] = []

    def step() -> None:
        seen.append((app.clock, app.monitor(1)))

    app.create(
        1, name="api", url="https://api.example.com", periodicity="1m", regions=["gru", "ams"], active=True
    )
    step()
    app.check(1, "gru", 200)
    step()
    app.check(1, "gru", 503)
    step()
    app.check(1, "ams", None)
    step()
    app.open_incident(10, 1)
    step()
    app.acknowledge(10, "mxkaske")
    app.check(1, "gru", 200)
    step()
    app.update(1, url="https://api.example.com/health", periodicity="30s")
    step()
    assert app.update(1, url="https://api.example.com/health") is False  # nothing changed: no event
    app.check(1, "ams", 200)
    app.resolve(10, 1)
    step()
    app.pause(1, active=False)
    step()
    app.pause(1, active=True)
    step()
    app.check(1, "ams", 500)
    step()
    app.delete(1)
    step()
    return seen


@pytest.fixture
def story(tmp_path: Path) -> tuple[AuditLog, ExampleApp, list[tuple[int, dict[str, Any]]]]:
    app = ExampleApp(tmp_path / "app.db")
    seen = run_story(app)
    return AuditLog(f"sqlite:///{tmp_path / 'app.db'}", registry=OPENSTATUS), app, seen


def _as_app_sees_it(state: MonitorState) -> dict[str, Any]:
    return {name: getattr(state, name) for name in COMPARED}


def test_monitor_projection_equals_the_state_the_application_reached(story: Any) -> None:
    log, app, _ = story
    state = log.project("monitor:1", MonitorState)
    assert _as_app_sees_it(state) == app.monitor(1)
    assert state.status == "deleted" and state.id == "monitor:1"
    assert state.revision == log.revision("monitor:1") == 13
    assert state.settings["url"] == "https://api.example.com/health"


def test_as_of_answers_the_state_at_every_step(story: Any) -> None:
    log, _, seen = story
    statuses = []
    for when, app_state in seen:
        state = log.project("monitor:1", MonitorState, as_of=when)
        assert _as_app_sees_it(state) == app_state, when
        statuses.append(state.status)
    assert statuses == [
        "active", "active", "degraded", "down", "down", "degraded", "degraded", "active", "paused", "active",
        "degraded", "deleted",
    ]  # fmt: skip


def test_as_of_takes_iso_times_and_before_anything_is_the_initial_state(story: Any) -> None:
    log, _, seen = story
    assert log.project("monitor:1", MonitorState, as_of=T0 - 1) == MonitorState()
    third = log.project("monitor:1", MonitorState, as_of="2026-01-01T00:03:00Z")  # T0 + 3 minutes
    assert third.status == "degraded" and third.failing_regions == ["gru"]


def test_incident_projection(story: Any) -> None:
    log, _, _ = story
    incident = log.project("incident:10", IncidentState)
    assert incident.status == "resolved" and incident.acknowledged_by == "mxkaske"
    assert incident.monitor_id == "1" and incident.cause == "down in every region"
    assert incident.opened_at is not None and incident.resolved_at is not None
    assert incident.duration_ms == incident.resolved_at - incident.opened_at
    assert incident.acknowledged_at is not None and incident.opened_at < incident.acknowledged_at
    assert log.project("incident:10", IncidentState, as_of=incident.opened_at).status == "open"


def test_replay_of_events_equals_project(story: Any) -> None:
    log, _, _ = story
    replayed = MonitorState.replay(log.history("monitor:1"))
    projected = log.project("monitor:1", MonitorState)
    assert replayed.model_dump() == projected.model_dump()
    assert (replayed.revision, replayed.position, projected.position) == (13, None, projected.position)
    assert projected.position is not None and projected.position > 13  # shared with incident:10


# -- snapshots --------------------------------------------------------------------------


class Counter(Projection):
    __projection_name__ = "counter"
    snapshot_every = 5
    count: int = 0
    last: int | None = None

    @on("tick.happened")
    def _tick(self, event: Event) -> None:
        self.count += 1
        self.last = event.metadata["n"]


def _ticks(log: AuditLog, start: int, stop: int) -> None:
    log.publish_many(
        [
            {"id": "clock:1", "action": "tick.happened", "timestamp": T0 + i, "metadata": {"n": i}}
            for i in range(start, stop)
        ]
    )


def test_a_long_replay_saves_a_snapshot_and_the_next_fold_starts_from_it(sqlite_log: AuditLog) -> None:
    _ticks(sqlite_log, 0, 12)
    assert sqlite_log.project("clock:1", Counter).count == 12
    snapshots = sqlite_log.snapshots
    assert snapshots is not None
    snap = snapshots.load_snapshot("", "clock:1", "counter", Counter.code_version(sqlite_log.registry))
    assert snap is not None and (snap.revision, snap.position) == (12, 12)
    # Prove the next fold reads the snapshot: doctor it, and the doctored count comes back.
    conn = sqlite3.connect(sqlite_log.store.path)  # type: ignore[attr-defined]
    with conn:
        conn.execute("UPDATE auditbird_snapshot SET state = ?", (json.dumps({"count": 1000, "last": 11}),))
    conn.close()
    _ticks(sqlite_log, 12, 15)
    state = sqlite_log.project("clock:1", Counter)
    assert (state.count, state.last, state.revision, state.position) == (1003, 14, 15, 15)
    assert sqlite_log.project("clock:1", Counter, snapshots=False).count == 15


def test_a_snapshot_of_other_code_is_ignored(sqlite_log: AuditLog) -> None:
    _ticks(sqlite_log, 0, 10)
    assert sqlite_log.project("clock:1", Counter).count == 10

    class Counter2(Projection):  # the same name, new handler code: the old snapshot must not count
        __projection_name__ = "counter"
        snapshot_every = 5
        count: int = 0
        last: int | None = None

        @on("tick.happened")
        def _tick(self, event: Event) -> None:
            self.count += 2
            self.last = event.metadata["n"]

    assert Counter2.code_version(sqlite_log.registry) != Counter.code_version(sqlite_log.registry)
    assert sqlite_log.project("clock:1", Counter2).count == 20

    class Counter3(Counter):
        __projection_name__ = "counter"
        __projection_version__ = 2  # an explicit bump, same code

    assert Counter3.code_version(sqlite_log.registry) != Counter.code_version(sqlite_log.registry)


def test_a_new_schema_version_of_a_handled_action_drops_snapshots() -> None:
    registry = ActionRegistry()

    @action("tick.happened", registry=registry)
    class Tick(BaseModel):
        n: int

    before = Counter.code_version(registry)

    @action("tick.happened", version=2, registry=registry)
    class TickV2(BaseModel):
        n: int
        zone: str = "UTC"

    assert Counter.code_version(registry) != before


def test_as_of_older_than_the_snapshot_replays_from_the_start(sqlite_log: AuditLog) -> None:
    _ticks(sqlite_log, 0, 10)
    sqlite_log.snapshot("clock:1", Counter)
    state = sqlite_log.project("clock:1", Counter, as_of=T0 + 3)
    assert (state.count, state.last) == (4, 3)


def test_a_handler_never_sees_an_event_that_does_not_fit_its_schema(db_path: Path) -> None:
    loose = AuditLog(f"sqlite:///{db_path}", registry=ActionRegistry())
    loose.publish_audit_log({"id": "monitor:9", "action": "monitor.down", "metadata": {"region": "gru"}})
    with AuditLog(f"sqlite:///{db_path}", registry=OPENSTATUS) as log, pytest.raises(ProjectionError):
        log.project("monitor:9", MonitorState)
