"""The OpenStatus actions of the seed, with metadata models. Import to register them.

Monitors report from regions (``gru``, ``ams``, ``iad``, ...); incidents open when a monitor
fails and close when it recovers; notifications go out through a provider.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..actions import action

__all__ = [
    "MonitorDown",
    "MonitorFailed",
    "MonitorRecovered",
    "NotificationSent",
    "IncidentCreated",
    "IncidentResolved",
]

Region = Annotated[str, Field(min_length=2, max_length=32, examples=["gru", "ams", "iad"])]
StatusCode = Annotated[int, Field(ge=100, le=599)]
Millis = Annotated[int, Field(ge=0)]


class _Metadata(BaseModel):
    # Unknown keys are kept, not rejected: older and newer OpenStatus builds add fields.
    model_config = ConfigDict(extra="allow")


@action("monitor.down")
class MonitorDown(_Metadata):
    """A check answered, but not as the monitor expects (wrong status, assertion failed)."""

    region: Region
    statusCode: StatusCode
    message: str | None = None
    latency: Millis | None = None
    cronTimestamp: Millis | None = None


@action("monitor.failed")
class MonitorFailed(_Metadata):
    """A check could not complete at all (timeout, DNS, TLS, connection refused)."""

    region: Region
    statusCode: StatusCode | None = None
    message: str | None = None
    cronTimestamp: Millis | None = None


@action("monitor.recovered")
class MonitorRecovered(_Metadata):
    """The monitor answers as expected again."""

    region: Region
    statusCode: StatusCode
    latency: Millis | None = None
    cronTimestamp: Millis | None = None


@action("notification.sent")
class NotificationSent(_Metadata):
    """A notification about a monitor went out."""

    provider: Literal["email", "slack", "discord", "sms", "pagerduty", "opsgenie", "webhook"]
    notificationId: str | None = None
    monitorId: str | None = None


@action("incident.created")
class IncidentCreated(_Metadata):
    """An incident opened, usually because a monitor failed in enough regions."""

    monitorId: str | None = None
    cause: str | None = None
    cronTimestamp: Millis | None = None


@action("incident.resolved")
class IncidentResolved(_Metadata):
    """An incident closed."""

    monitorId: str | None = None
    durationMs: Millis | None = None
    cronTimestamp: Millis | None = None
