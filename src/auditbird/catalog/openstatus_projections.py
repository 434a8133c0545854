"""Projections of the OpenStatus example: a monitor's state and an incident's state.

import auditbird.catalog.openstatus_projections as os_proj
state = log.project("monitor:1", os_proj.MonitorState)
state.status            # "active" | "degraded" | "down" | "paused" | "deleted" | "unknown"
"""

from __future__ import annotations

from typing import Any, Literal

from ..event import Event
from ..projections import Projection, on
from . import openstatus_lifecycle  # noqa: F401 - registers every action handled below

__all__ = ["MonitorState", "IncidentState"]

MonitorStatus = Literal["unknown", "active", "degraded", "down", "paused", "deleted"]


class MonitorState(Projection):
    """A monitor: its settings (from change events) and its health (from check events).

    Down in every configured region is ``down``, in some of them ``degraded``.
    """

    id: str = ""
    name: str | None = None
    url: str | None = None
    periodicity: str | None = None
    regions: list[str] = []
    settings: dict[str, Any] = {}
    status: MonitorStatus = "unknown"
    paused: bool = False
    deleted: bool = False
    failing_regions: list[str] = []
    last_status_code: int | None = None
    last_message: str | None = None
    failures: int = 0
    recoveries: int = 0
    open_incident: bool = False
    incidents: int = 0
    created_at: int | None = None
    updated_at: int | None = None

    def _settle(self) -> None:
        if self.deleted:
            self.status = "deleted"
        elif self.paused:
            self.status = "paused"
        elif not self.failing_regions:
            self.status = "active" if self.created_at is not None else "unknown"
        elif not self.regions or set(self.regions) <= set(self.failing_regions):
            self.status = "down"
        else:
            self.status = "degraded"

    def _configure(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.name = settings.get("name", self.name)
        self.url = settings.get("url", self.url)
        self.periodicity = settings.get("periodicity", self.periodicity)
        self.regions = list(settings.get("regions", self.regions))
        if "active" in settings:
            self.paused = not settings["active"]

    @on("monitor.created")
    def _created(self, event: Event) -> None:
        self.id = event.id
        self.created_at = self.updated_at = event.timestamp
        self.deleted = False
        self._configure(event.metadata.after or {})
        self._settle()

    @on("monitor.updated")
    def _updated(self, event: Event) -> None:
        self.updated_at = event.timestamp
        self._configure(event.metadata.after or {})
        self._settle()

    @on("monitor.paused")
    def _paused(self, event: Event) -> None:
        self.paused = True
        self.updated_at = event.timestamp
        self._settle()

    @on("monitor.resumed")
    def _resumed(self, event: Event) -> None:
        self.paused = False
        self.failing_regions = []  # nothing is known about health until the next checks
        self.updated_at = event.timestamp
        self._settle()

    @on("monitor.down", "monitor.failed")
    def _failing(self, event: Event) -> None:
        meta = event.metadata
        if meta.region not in self.failing_regions:
            self.failing_regions = sorted([*self.failing_regions, meta.region])
        self.last_status_code = meta.statusCode
        self.last_message = meta.message
        self.failures += 1
        self._settle()

    @on("monitor.recovered")
    def _recovered(self, event: Event) -> None:
        meta = event.metadata
        if meta.region in self.failing_regions:
            self.failing_regions = [r for r in self.failing_regions if r != meta.region]
            self.recoveries += 1
        self.last_status_code = meta.statusCode
        self.last_message = None
        self._settle()

    @on("incident.created")
    def _incident_opened(self, event: Event) -> None:
        self.open_incident = True
        self.incidents += 1

    @on("incident.resolved")
    def _incident_resolved(self, event: Event) -> None:
        self.open_incident = False

    @on("monitor.deleted")
    def _deleted(self, event: Event) -> None:
        self.deleted = True
        self.updated_at = event.timestamp
        self._settle()


IncidentStatus = Literal["none", "open", "acknowledged", "resolved"]


class IncidentState(Projection):
    """An incident: opened, acknowledged by someone, resolved."""

    id: str = ""
    monitor_id: str | None = None
    status: IncidentStatus = "none"
    cause: str | None = None
    opened_at: int | None = None
    acknowledged_at: int | None = None
    acknowledged_by: str | None = None
    resolved_at: int | None = None
    duration_ms: int | None = None

    @on("incident.created")
    def _created(self, event: Event) -> None:
        self.id = event.id
        self.monitor_id = event.metadata.monitorId
        self.cause = event.metadata.cause
        self.status = "open"
        self.opened_at = event.timestamp

    @on("incident.acknowledged")
    def _acknowledged(self, event: Event) -> None:
        if self.status == "open":
            self.status = "acknowledged"
            self.acknowledged_at = event.timestamp
            self.acknowledged_by = event.actor.name

    @on("incident.resolved")
    def _resolved(self, event: Event) -> None:
        self.status = "resolved"
        self.resolved_at = event.timestamp
        given = event.metadata.durationMs
        opened = self.opened_at
        self.duration_ms = (
            given if given is not None else (None if opened is None else event.timestamp - opened)
        )
