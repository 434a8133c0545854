"""The OpenStatus lifecycle actions beside the seed's checks: monitors created, updated,
paused, resumed and deleted, and incidents acknowledged. Import to register them (this also
registers :mod:`auditbird.catalog.openstatus`).

Created/updated/deleted are change events (:class:`auditbird.changes.ChangeSet`): their
metadata holds the monitor's configuration before and after, and the fields that changed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ..actions import action
from ..changes import ChangeSet
from . import openstatus  # noqa: F401 - the checks (down/failed/recovered) and incidents

__all__ = [
    "MonitorCreated",
    "MonitorUpdated",
    "MonitorDeleted",
    "MonitorPaused",
    "MonitorResumed",
    "IncidentAcknowledged",
]


@action("monitor.created")
class MonitorCreated(ChangeSet):
    """A monitor was configured: ``after`` holds its settings (name, url, periodicity, regions, ...)."""


@action("monitor.updated")
class MonitorUpdated(ChangeSet):
    """A monitor's settings changed: ``before``, ``after`` and the ``changed`` fields."""


@action("monitor.deleted")
class MonitorDeleted(ChangeSet):
    """A monitor was removed: ``before`` holds its last settings."""


class _Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")


@action("monitor.paused")
class MonitorPaused(_Metadata):
    """Checks stopped on purpose (maintenance, a plan limit)."""

    reason: str | None = None


@action("monitor.resumed")
class MonitorResumed(_Metadata):
    """Checks run again."""

    reason: str | None = None


@action("incident.acknowledged")
class IncidentAcknowledged(_Metadata):
    """Someone took the incident; the event's actor is who."""

    monitorId: str | None = None
    note: str | None = None
