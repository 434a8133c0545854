"""Personal values are sealed whichever way a request's events take into the store: a small
body is published on the event loop, a large one on an ingest thread (through the writer's
blocking view); both must seal the actor's name and ``Personal`` metadata before they are
written, so an erasure can forget them later."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from auditbird import ActionRegistry, Personal
from auditbird.service import KeyStore, ServiceLimits, create_app
from auditbird.service.ingest import INLINE_BYTES


class Invited(BaseModel):
    email: Annotated[str, Personal()]
    note: str = ""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    registry = ActionRegistry()
    registry.register("user.invited", Invited)
    keys = KeyStore(tmp_path / "k.db")
    token = keys.create(workspace="w", scope="admin").secret
    db = tmp_path / "a.db"
    app = create_app(f"sqlite:///{db}", keys=keys, registry=registry, limits=ServiceLimits(default_rate=0))
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c, db


def _event(i: int) -> dict[str, Any]:
    return {
        "id": "org:1",
        "action": "user.invited",
        "actor": {"id": f"user-{i}", "name": "Ada Lovelace"},
        "metadata": {"email": "ada@example.org", "note": "n" * 40},
    }


def _stored(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.execute("SELECT actor, metadata FROM audit_log ORDER BY position"))
    finally:
        conn.close()


@pytest.mark.parametrize("count", [1, 300], ids=["on the loop", "on an ingest thread"])
@pytest.mark.parametrize("minimal", [False, True], ids=["full answer", "return=minimal"])
def test_personal_values_are_sealed_in_small_and_large_bodies(
    client: tuple[TestClient, Path], count: int, minimal: bool
) -> None:
    c, db = client
    events = [_event(i) for i in range(count)]
    headers = {"Prefer": "return=minimal"} if minimal else {}
    r = c.post("/v1/events", json=events, headers=headers)
    assert r.status_code == 201, r.text
    assert (len(r.request.content) > INLINE_BYTES) == (count == 300)  # both paths are taken
    rows = _stored(db)
    assert len(rows) == count
    for actor, metadata in rows:
        assert "Ada Lovelace" not in actor and "$erasable:" in actor
        assert "ada@example.org" not in metadata and "$erasable:" in metadata
    # Read back through the API, in the clear (the subject was not erased).
    page = c.get("/v1/events", params={"limit": 5}).json()["data"]
    assert {e["actor"]["name"] for e in page} == {"Ada Lovelace"}
    assert {e["metadata"]["email"] for e in page} == {"ada@example.org"}
