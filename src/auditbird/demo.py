"""``make run``: the seed's example events on the embedded store, an admin key, and the service.

Publishes the seed's events (with fixed uids, so running it again stores nothing twice),
prints their history, creates an admin key for the default workspace (revoking the one the
previous run made), prints the URLs, then serves the API and viewer until Ctrl-C.
``AUDITBIRD_URL`` picks the store, ``AUDITBIRD_PORT`` the port (8000, or a free one if taken).
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import uuid

from rich.console import Console

from . import AuditLog
from .catalog import openstatus  # noqa: F401 - registers the OpenStatus actions
from .cli.output import print_table
from .event import Event
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


_SEED_NS = uuid.UUID("0b5c3e2a-8d3f-4a51-9c55-0d7c1d2a9e10")
KEY_NAME = "make run"


def seed(url: str) -> list[Event]:
    """Publish the seed's events once (fixed uids), a minute apart, ending now."""
    from .event import now_ms

    now = now_ms()
    events = [
        {
            **event,
            "uid": str(uuid.uuid5(_SEED_NS, str(i))),
            "timestamp": now - (len(SEED_EVENTS) - 1 - i) * 60_000,
        }
        for i, event in enumerate(SEED_EVENTS)
    ]
    with AuditLog(url) as log:
        log.publish_many(events)
        return log.get_audit_log(event_id="monitor:1")


def _port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


def serve(url: str, console: Console) -> None:
    import uvicorn

    from .service import KeyStore, create_app, keys_path_for

    keys = KeyStore(keys_path_for(url))
    for old in keys.list():
        if old.name == KEY_NAME:
            keys.revoke(old.key_id)
    secret = keys.create(workspace="", scope="admin", name=KEY_NAME).secret
    port = _port(int(os.environ.get("AUDITBIRD_PORT", "8000")))
    base = f"http://127.0.0.1:{port}"
    console.print(f"\n[bold]auditbird is serving {url}[/bold] (keys in {keys.where})")
    console.print(f"  viewer:    {base}/")
    console.print(f"  API docs:  {base}/docs   (OpenAPI: {base}/openapi.json)", soft_wrap=True)
    console.print("  try:")
    console.print(
        f"    curl -s '{base}/v1/events?event_id=monitor:1' -H \"Authorization: Bearer $AUDITBIRD_API_KEY\"",
        soft_wrap=True,
        highlight=False,
    )
    console.print("  admin key for the default workspace (shown once; Ctrl-C stops the server):")
    sys.stdout.write(f"export AUDITBIRD_API_KEY={secret}\n")
    sys.stdout.flush()
    app = create_app(url, keys=keys)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def missing_service_extra() -> list[str]:
    """The modules of the ``service`` extra that are not installed (checked before any work)."""
    missing = []
    for name in ("fastapi", "uvicorn"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def main() -> int:
    console = Console()
    serving = "--no-serve" not in sys.argv
    missing = missing_service_extra() if serving else []
    if missing:
        # Say so before seeding anything: a demo that stops half-way looks broken.
        sys.stderr.write(
            f"error: the demo serves the API and viewer, which needs {' and '.join(missing)}: "
            "pip install 'auditbird[service]' (or run `python -m auditbird.demo --no-serve` "
            "to only publish and print the example events)\n"
        )
        return 1
    url = default_url()
    history = seed(url)
    rows = (
        (str(e.timestamp), e.action, e.actor.name, str(e.to_dict()["targets"]), str(e.to_dict()["metadata"]))
        for e in history
    )
    columns = ("time (ms)", "action", "actor", "targets", "metadata")
    print_table(columns, rows, title=f"monitor:1 — {len(history)} events in {url}, newest first")
    if serving:
        serve(url, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
