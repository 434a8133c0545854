"""Support for the tests of OpenStatus workspaces: OpenStatus's datafiles on a local server, and
rows sent the way the seed's own client sends them."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditbird import AuditLog, Tinybird

__all__ = [
    "SEED_DATAFILES",
    "SEED_EXAMPLE",
    "seed_line",
    "seed_server",
    "stream",
    "post_seed",
    "seed_pipe",
    "seed_log",
]

SEED_DATAFILES = Path(__file__).parent / "data" / "openstatus-tinybird"
# The seed's README example, as the seed's own client sends it (client.ts + base-validation.ts of
# openstatus@74a234dc): actor, targets and metadata JSON-stringified by zod, the default actor
# {id: "server", type: "system"}, timestamp Date.now() in ms, version 1, no uid, no workspace.
SEED_EXAMPLE = {
    "id": "monitor:1",
    "action": "monitor.down",
    "targets": [{"id": "1", "type": "monitor"}],
    "metadata": {"region": "gru", "statusCode": 400, "message": "timeout"},
}


def seed_line(event: dict[str, Any], timestamp: int | None = None) -> str:
    """One NDJSON line as the seed's ingestActionEventSchema turns ``event`` into."""
    out: dict[str, Any] = {
        "id": event["id"],
        "action": event["action"],
        "timestamp": timestamp if timestamp is not None else int(time.time() * 1000),
        "version": event.get("version", 1),
        "actor": json.dumps(event.get("actor", {"id": "server", "type": "system"}), separators=(",", ":")),
        "metadata": json.dumps(event.get("metadata"), separators=(",", ":")),
    }
    if event.get("targets") is not None:  # JSON.stringify(undefined) leaves the key out
        out["targets"] = json.dumps(event["targets"], separators=(",", ":"))
    return json.dumps(out, separators=(",", ":"))


@pytest.fixture(scope="module")
def seed_server(tinybird_server_factory: Any) -> Any:
    """A local server that loads OpenStatus's datafiles beside auditbird's own."""
    return tinybird_server_factory(datafiles=[SEED_DATAFILES])


@pytest.fixture
def stream() -> str:
    """A stream id of this test's own: seed rows have no workspace to keep tests apart."""
    return f"monitor:{uuid.uuid4().hex[:10]}"


def post_seed(server: Any, lines: list[str]) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/v0/events",
        params={"name": "audit_log__v0"},
        headers=server.headers,
        content=("\n".join(lines) + "\n").encode(),
        timeout=30,
    )
    assert response.status_code in (200, 202), response.text
    answer: dict[str, Any] = response.json()
    return answer


def seed_pipe(server: Any, event_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{server.url}/v0/pipes/endpoint_audit_log__v0.json",
        params={"event_id": event_id},
        headers=server.headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def seed_log(server: Any) -> AuditLog:
    return AuditLog(tb=Tinybird(token=server.token, host=server.url, datasource="audit_log__v0"))


# -- the seed's datafiles run unchanged ----------------------------------------------------
