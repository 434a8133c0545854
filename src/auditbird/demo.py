"""``make run``: publish the seed's example events on the embedded store and print their history."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from . import AuditLog
from .catalog import openstatus  # noqa: F401 - registers the OpenStatus actions
from .stores import default_url

SEED_EVENTS = [
    {
        "id": "monitor:1",
        "action": "monitor.down",
        "targets": [{"id": "1", "type": "monitor"}],
        "metadata": {"region": "gru", "statusCode": 400, "message": "timeout"},
    },
    {
        "id": "monitor:1",
        "action": "incident.created",
        "actor": {"id": "1", "name": "mxkaske"},
        "targets": [{"id": "1", "name": "monitor"}],
        "metadata": {"monitorId": "1", "cause": "monitor down in gru"},
    },
    {
        "id": "monitor:1",
        "action": "notification.sent",
        "targets": [{"id": "1", "type": "monitor"}],
        "metadata": {"provider": "slack", "monitorId": "1"},
    },
    {
        "id": "monitor:1",
        "action": "monitor.recovered",
        "targets": [{"id": "1", "type": "monitor"}],
        "metadata": {"region": "gru", "statusCode": 200, "latency": 182},
    },
]


def main() -> int:
    console = Console()
    url = default_url()
    with AuditLog(url) as log:
        for event in SEED_EVENTS:
            log.publish_audit_log(event)
        history = log.get_audit_log(event_id="monitor:1")
    table = Table(title=f"monitor:1 — {len(history)} events in {url}, newest first")
    for column in ("time (ms)", "action", "actor", "targets", "metadata"):
        table.add_column(column)
    for e in history:
        data = e.to_dict()
        table.add_row(str(e.timestamp), e.action, e.actor.name, str(data["targets"]), str(data["metadata"]))
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
