"""``POST /v1/subjects/{subject}/erase`` on a live ``auditbird serve`` (a real subprocess on a
loopback port): admin scope and the key's workspace only, 404 for an unknown subject with
nothing changed, and afterwards no plaintext of the subject in any API or viewer answer, nor in
the database file or its WAL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from auditbird.service.keys import KeyStore, keys_path_for

from .live_server import serving

ADA, ADA_MAIL, BOB, BOB_MAIL = "Ada Lovelace", "ada@example.org", "Bob Babbage", "bob@example.org"

ACTIONS = """
from typing import Annotated
from pydantic import BaseModel
from auditbird import Personal, action

@action("user.invited")
class UserInvited(BaseModel):
    email: Annotated[str, Personal()]
"""


def _event(actor_id: str, name: str, email: str) -> dict[str, object]:
    return {
        "id": "org:1",
        "action": "user.invited",
        "actor": {"id": actor_id, "name": name},
        "metadata": {"email": email},
    }


def _client(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _everything_a_reader_sees(c: httpx.Client) -> str:
    """Every read answer of the API and the viewer, concatenated."""
    page = c.get("/v1/events", params={"limit": 100})
    assert page.status_code == 200, page.text
    texts = [page.text]
    for event in page.json()["data"]:
        texts.append(c.get(f"/v1/events/{event['uid']}").text)
        texts.append(c.get(f"/v1/viewer/events/{event['uid']}").text)
    for fmt in ("ndjson", "csv"):
        texts.append(c.get("/v1/export", params={"format": fmt}).text)
        texts.append(c.get("/v1/viewer/export", params={"format": fmt}).text)
    texts.append(c.get("/v1/viewer/events", params={"limit": 100}).text)
    texts.append(c.get("/v1/events", params={"limit": 100, "text": "Ada"}).text)
    return "\n".join(texts)


def test_the_admin_api_erases_a_subject_in_its_workspace_only(tmp_path: Path) -> None:
    (tmp_path / "erasure_service_actions.py").write_text(ACTIONS)
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    keys = KeyStore(keys_path_for(store))
    write, read, admin = (keys.create(workspace="acme", scope=s).secret for s in ("write", "read", "admin"))
    other_admin = keys.create(workspace="other", scope="admin").secret
    keys.close()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "AUDITBIRD_RATE_LIMIT": "0",
    }
    env.pop("AUDITBIRD_KEYS", None)
    with serving("--store", store, "--actions", "erasure_service_actions", cwd=tmp_path, env=env) as base:
        with _client(base, write) as c:
            r = c.post("/v1/events", json=[_event("42", ADA, ADA_MAIL), _event("43", BOB, BOB_MAIL)])
            assert r.status_code < 300, r.text
        with _client(base, other_admin) as c:  # the same subject id, in another workspace
            assert c.post("/v1/events", json=_event("42", "Ada Other", "o@x.org")).status_code < 300
        with _client(base, write) as c:  # only sealing writes the prefix (review finding 7)
            r = c.post("/v1/events", json=_event("44", "$erasable:v1:x:y", "c@x.org"))
            assert r.status_code == 422 and "actor.name" in r.text and "$erasable:" in r.text
        with _client(base, read) as c:
            assert ADA in _everything_a_reader_sees(c)
        db_before = (tmp_path / "audit.subjects.db").read_bytes()

        with _client(base, write) as c:
            r = c.post("/v1/subjects/user:42/erase")
            assert r.status_code == 403 and "admin" in r.json()["detail"]
        with _client(base, read) as c:
            assert c.post("/v1/subjects/user:42/erase").status_code == 403
        with httpx.Client(base_url=base) as c:
            assert c.post("/v1/subjects/user:42/erase").status_code == 401
        with _client(base, admin) as c:
            r = c.post("/v1/subjects/user:99/erase")
            assert r.status_code == 404 and "user:99" in r.json()["detail"]
            assert c.post("/v1/subjects/nocolon/erase").status_code == 422
        assert (tmp_path / "audit.subjects.db").read_bytes() == db_before  # nothing changed so far

        with _client(base, admin) as c:
            r = c.post("/v1/subjects/user:42/erase")
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["subject"], body["workspace"], body["erased"]) == ("user:42", "acme", True)
            assert body["event"]["action"] == "audit_log.subject_erased"
            assert body["event"]["actor"]["type"] == "api_key"
            assert c.post("/v1/subjects/user:42/erase").status_code == 404  # erased already

        with _client(base, read) as c:
            seen = _everything_a_reader_sees(c)
            assert ADA not in seen and ADA_MAIL not in seen
            assert BOB in seen and BOB_MAIL in seen and "[erased]" in seen
            erasures = c.get("/v1/events", params={"action": "audit_log.subject_erased"}).json()["data"]
            assert [e["metadata"]["subject"] for e in erasures] == ["user:42"]
        with _client(base, other_admin) as c:  # the other workspace's user:42 keeps its data
            names = [e["actor"]["name"] for e in c.get("/v1/events").json()["data"]]
            assert names == ["Ada Other"]
        for name in ("audit.db", "audit.db-wal"):
            path = tmp_path / name
            if path.exists():
                raw = path.read_bytes()
                assert ADA.encode() not in raw and ADA_MAIL.encode() not in raw
    assert json.loads(json.dumps(body))["event"]["metadata"] == {"subject": "user:42", "keys_destroyed": 1}


def test_an_erasure_forgets_the_workspaces_idempotency_records(tmp_path: Path) -> None:
    """The answer recorded for an Idempotency-Key holds the event as published (in the clear):
    erasing a subject deletes the workspace's records, so a retry reads the stored event
    ([erased]) and neither the key file nor its WAL keeps the plaintext (review finding 1)."""
    (tmp_path / "erasure_service_actions.py").write_text(ACTIONS)
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    keys = KeyStore(keys_path_for(store))
    write, admin = (keys.create(workspace="acme", scope=s).secret for s in ("write", "admin"))
    other = keys.create(workspace="other", scope="write").secret
    keys.close()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "AUDITBIRD_RATE_LIMIT": "0",
    }
    env.pop("AUDITBIRD_KEYS", None)
    once = {"Idempotency-Key": "k1"}
    with serving("--store", store, "--actions", "erasure_service_actions", cwd=tmp_path, env=env) as base:
        with _client(base, write) as c:
            first = c.post("/v1/events", json=_event("42", ADA, ADA_MAIL), headers=once)
            assert first.status_code == 201 and ADA_MAIL in first.text
        with _client(base, other) as c:  # another workspace's record stays
            kept = c.post("/v1/events", json=_event("7", BOB, BOB_MAIL), headers=once)
            assert kept.status_code == 201
        with _client(base, admin) as c:
            assert c.post("/v1/subjects/user:42/erase").status_code == 200
        with _client(base, write) as c:
            again = c.post("/v1/events", json=_event("42", ADA, ADA_MAIL), headers=once)
            assert again.status_code == 201, again.text
            assert ADA not in again.text and ADA_MAIL not in again.text
            assert again.json()["uid"] == first.json()["uid"]  # still the one event
        with _client(base, other) as c:
            assert c.post("/v1/events", json=_event("7", BOB, BOB_MAIL), headers=once).text == kept.text
        for name in ("audit.keys.db", "audit.keys.db-wal"):
            path = tmp_path / name
            if path.exists():
                raw = path.read_bytes()
                assert ADA.encode() not in raw and ADA_MAIL.encode() not in raw, name
