"""Streams added over the API before the egress rule existed carry no ``restricted`` mark. A
stream's origin is now stored, old rows are upgraded when the file is opened, and every stream
not known to be the operator's own is checked at each connection: an old API row pointing at
loopback is refused, as a new one is."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditbird import AuditLog
from auditbird.streams import (
    Backoff,
    StreamRegistry,
    StreamRunner,
    StreamTarget,
    create_stream,
    replay_dead_letters,
)
from auditbird.streams.config import _SCHEMA, new_secret

from .streams_support import WebhookReceiver

FAST = Backoff(0.001, 0.01)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


def _old_row(db: Path, name: str, kind: str, options: dict[str, object]) -> None:
    """A row as a release before stream origins wrote it: no ``origin`` column at all."""
    conn = sqlite3.connect(f"{db}.streams.db")
    with conn:
        conn.executescript(_SCHEMA)
        assert "origin" not in {r[1] for r in conn.execute("PRAGMA table_info(streams)")}
        conn.execute(
            "INSERT INTO streams (workspace, name, kind, options, filter, max_attempts, created_at) "
            "VALUES ('acme', ?, ?, ?, '{}', 1, 0)",
            (name, kind, json.dumps(options)),
        )
    conn.close()


def _publish(db: Path) -> None:
    with AuditLog(f"sqlite:///{db}", workspace="acme") as log:
        log.publish_audit_log({"id": "m:1", "action": "monitor.down"})


def _run(db: Path) -> None:
    runner = StreamRunner(f"sqlite:///{db}", workspace="acme", backoff=FAST)
    try:
        runner.run()
    finally:
        runner.close()


def test_an_old_unmarked_api_stream_cannot_reach_loopback(
    tmp_path: Path, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUDITBIRD_STREAM_HOSTS", raising=False)
    db = tmp_path / "audit.db"
    _publish(db)
    # What the API stored before the egress rule: a webhook with a secret and no mark.
    _old_row(db, "old-hook", "webhook", {"url": receiver.url, "secret": new_secret()})
    _run(db)
    assert receiver.events() == []
    with StreamRegistry.for_store(f"sqlite:///{db}") as registry:
        stream = registry.get("acme", "old-hook")
        assert stream.origin == "unknown" and stream.restricted
        assert stream.dead_letters == 1 and "AUDITBIRD_STREAM_HOSTS" in (stream.last_error or "")
    # The operator allows loopback: the same stream's dead letter is delivered.
    monkeypatch.setenv("AUDITBIRD_STREAM_HOSTS", "127.0.0.0/8")
    with StreamRegistry.for_store(f"sqlite:///{db}") as registry:
        stream = registry.get("acme", "old-hook")
        assert replay_dead_letters(registry, stream, store_url=f"sqlite:///{db}") == (1, None)
    assert len(receiver.events()) == 1


def test_old_rows_get_the_origin_their_stored_details_prove(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    _old_row(db, "marked", "webhook", {"url": "https://siem.example", "secret": "s", "restricted": True})
    _old_row(db, "file", "ndjson", {"path": str(tmp_path / "out.ndjson")})
    _old_row(db, "tls", "syslog", {"host": "10.0.0.5", "port": 6514, "tls": True, "ca_file": "/ca.pem"})
    _old_row(db, "plain", "syslog", {"host": "10.0.0.5", "port": 514, "tls": False})
    with StreamRegistry.for_store(f"sqlite:///{db}") as registry:
        got = {s.name: (s.origin, s.restricted) for s in registry.list("acme")}
    assert got == {
        "marked": ("api", True),
        "file": ("operator", False),  # only the CLI adds NDJSON files
        "tls": ("operator", False),  # or CA files
        "plain": ("unknown", True),  # cannot be told apart: checked (fail closed)
    }


def test_new_streams_store_their_origin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    create_stream(url, "acme", "cli", StreamTarget.webhook("https://siem.example/hook"))
    create_stream(url, "acme", "api", StreamTarget.webhook("https://siem.example/hook"), origin="api")
    with StreamRegistry.for_store(url) as registry:
        assert registry.get("acme", "cli").origin == "operator" and not registry.get("acme", "cli").restricted
        assert registry.get("acme", "api").origin == "api" and registry.get("acme", "api").restricted
        with pytest.raises(ValueError, match="stream origin"):
            registry.add("x", workspace="acme", kind="webhook", options={}, origin="unknown")
