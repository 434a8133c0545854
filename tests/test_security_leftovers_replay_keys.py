"""A dead-letter replay opens only the subject keys it needs to open sealed values, never the
events' store (its dead letters hold the events): seen through Python's audit hook on
``sqlite3.connect``."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

from .streams_support import WebhookReceiver

_CONNECTS: list[str] | None = None  # the databases connected to while a test records


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event == "sqlite3.connect" and _CONNECTS is not None:
        _CONNECTS.append(str(args[0]))


sys.addaudithook(_hook)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(status=400).start()
    yield r
    r.stop()


def test_a_replay_opens_the_subject_keys_and_not_the_store(tmp_path: Path, receiver: WebhookReceiver) -> None:
    global _CONNECTS
    db = tmp_path / "audit.db"
    url = f"sqlite:///{db}"
    create_stream(url, "acme", "hook", StreamTarget.webhook(receiver.url), max_attempts=1)
    with AuditLog(url, workspace="acme") as log:  # the actor's name is personal: sealed
        log.publish_audit_log({"id": "m:1", "action": "monitor.down", "actor": {"id": "7", "name": "Ada"}})
    runner = StreamRunner(url, workspace="acme", backoff=Backoff(0.001, 0.01))
    try:
        runner.run()
    finally:
        runner.close()
    assert b"Ada" not in db.read_bytes()
    receiver.status = 200
    with StreamRegistry.for_store(url) as registry:
        _CONNECTS = []
        try:
            replayed = replay_dead_letters(registry, registry.get("acme", "hook"), store_url=url)
        finally:
            connects, _CONNECTS = _CONNECTS, None
    assert replayed == (1, None)
    assert [e["actor"]["name"] for e in receiver.events()] == ["Ada"]  # opened with the subject's key
    assert str(db) not in connects, connects
    with sqlite3.connect(db) as conn:  # and nothing of the store's was touched meanwhile
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
