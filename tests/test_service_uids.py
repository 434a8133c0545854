"""uids are unique per workspace and say nothing across workspaces (issue #10 item 8).

Workspace B must not learn whether a uid exists in A (same answers either way), must not be able
to claim A's uid before A uses it, and must not be able to predict the uids the service derives
from A's Idempotency-Keys.
"""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from auditbird.service import KeyStore, create_app
from tests.plugins.service import LiveServer

# How the old service derived a uid from an Idempotency-Key: public, so anyone could compute it.
_OLD_NS = uuid.UUID("6f1c1a52-2f0e-4c8e-9a0a-6a7d3b1f7e11")


@pytest.fixture
def tenants(live_server: LiveServer) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        "a": live_server.mint(f"uid-a-{tag}", "admin"),
        "b": live_server.mint(f"uid-b-{tag}", "admin"),
        "a_ws": f"uid-a-{tag}",
    }


def _shape(r: object) -> tuple[int, list[str]]:
    body = r.json()  # type: ignore[attr-defined]
    return r.status_code, sorted(body)  # type: ignore[attr-defined]


def test_another_workspace_cannot_tell_whether_a_uid_exists(
    live_server: LiveServer, tenants: dict[str, str]
) -> None:
    taken, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    with live_server.client(tenants["a"]) as a:
        assert a.post("/v1/events", json={"id": "s:1", "action": "a.b", "uid": taken}).status_code == 201
    with live_server.client(tenants["b"]) as b:
        on_taken = b.post("/v1/events", json={"id": "s:1", "action": "a.b", "uid": taken})
        on_fresh = b.post("/v1/events", json={"id": "s:1", "action": "a.b", "uid": fresh})
        assert _shape(on_taken) == _shape(on_fresh) == (201, sorted(on_fresh.json()))
        assert on_taken.json()["workspace"] != tenants["a_ws"]
        many = b.post("/v1/events", json=[{"id": "s:2", "action": "a.b", "uid": taken}])
        assert many.status_code == 201
        # B reads its own event under that uid; A's stays A's.
        assert b.get(f"/v1/events/{taken}").json()["workspace"] == on_taken.json()["workspace"]
    with live_server.client(tenants["a"]) as a:
        mine = a.get(f"/v1/events/{taken}").json()
        assert mine["workspace"] == tenants["a_ws"] and mine["id"] == "s:1"


def test_another_workspace_cannot_pre_claim_a_uid(live_server: LiveServer, tenants: dict[str, str]) -> None:
    uid = str(uuid.uuid4())
    with live_server.client(tenants["b"]) as b:
        assert b.post("/v1/events", json={"id": "squat:1", "action": "a.b", "uid": uid}).status_code == 201
    with live_server.client(tenants["a"]) as a:
        for _ in range(2):  # and its retry stores nothing twice
            r = a.post("/v1/events", json={"id": "real:1", "action": "a.b", "uid": uid})
            assert r.status_code == 201 and r.json()["id"] == "real:1"
        assert [e["id"] for e in a.get("/v1/events", params={"event_id": "real:1"}).json()["data"]] == [
            "real:1"
        ]


def test_uids_derived_from_an_idempotency_key_are_not_predictable(
    live_server: LiveServer, tenants: dict[str, str]
) -> None:
    key = f"req-{uuid.uuid4()}"
    answers = {}
    for name in ("a", "b"):
        with live_server.client(tenants[name]) as c:
            r = c.post("/v1/events", json={"id": "idem:1", "action": "a.b"}, headers={"Idempotency-Key": key})
            assert r.status_code == 201
            answers[name] = r.json()["uid"]
    guessed = str(uuid.uuid5(_OLD_NS, f"{tenants['a_ws']}\x00{key}\x000"))
    assert answers["a"] != guessed
    assert answers["a"] != answers["b"]
    secret = live_server.keys_path.with_name(live_server.keys_path.stem + ".secret")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_a_derived_uid_depends_on_the_servers_secret(tmp_path: Path) -> None:
    uids = []
    for name in ("one", "two"):
        keys = KeyStore(tmp_path / name / "audit.keys.db")
        token = keys.create(workspace="A", scope="write").secret
        app = create_app(f"sqlite:///{tmp_path / name / 'audit.db'}", keys=keys)
        with TestClient(app) as c:
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "same-key"}
            first = c.post("/v1/events", json={"id": "x:1", "action": "a.b"}, headers=headers).json()["uid"]
            uids.append(first)
        # Stable across restarts (a retry after a restart stores nothing twice): the record of
        # the first answer is dropped, so the uid is derived again from the same secret.
        keys = KeyStore(tmp_path / name / "audit.keys.db")
        keys._conn.execute("DELETE FROM idempotency")
        with TestClient(create_app(f"sqlite:///{tmp_path / name / 'audit.db'}", keys=keys)) as c:
            again = c.post("/v1/events", json={"id": "x:1", "action": "a.b"}, headers=headers)
            assert again.json()["uid"] == first
    assert uids[0] != uids[1]
