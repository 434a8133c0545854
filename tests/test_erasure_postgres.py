"""Erasure on the PostgreSQL store: subject keys in PostgreSQL beside the events (a real,
throwaway cluster), the stored rows holding only ciphertext, and an erasure by one process
holding for the next read of another (nothing is cached)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import psycopg
import pytest

from auditbird import AuditLog, NotFound
from auditbird.erasure import ERASED, ERASED_ACTION, erase_subject
from auditbird.erasure.keys_postgres import PostgresSubjectKeys
from auditbird.service.keys import KeyStore

from .erasure_support import invited_registry as _registry
from .live_server import serving

ADA, ADA_MAIL, BOB = "Ada Lovelace", "ada@example.org", "Bob Babbage"


def test_postgres_keeps_subject_keys_and_erases(postgres_url: str) -> None:
    reg = _registry()
    log = AuditLog(postgres_url, workspace="acme", registry=reg)
    reader = AuditLog(postgres_url, workspace="acme", registry=reg)
    try:
        ada = log.publish_audit_log(
            {
                "id": "org:1",
                "action": "user.invited",
                "actor": {"id": "42", "name": ADA},
                "metadata": {"email": ADA_MAIL},
            }
        ).uid
        bob = log.publish_audit_log(
            {
                "id": "org:1",
                "action": "user.invited",
                "actor": {"id": "43", "name": BOB},
                "metadata": {"email": "b@x.org"},
            }
        ).uid
        with psycopg.connect(postgres_url) as conn:
            stored = " ".join(str(r) for r in conn.execute("SELECT * FROM audit_log").fetchall())
            subjects = sorted(r[0] for r in conn.execute("SELECT subject FROM auditbird_subject_keys"))
        assert ADA not in stored and ADA_MAIL not in stored and "$erasable:v1:" in stored
        assert subjects == ["user:42", "user:43"]
        assert reader.get(ada).metadata.email == ADA_MAIL

        with pytest.raises(NotFound):
            erase_subject(log, "user:99")
        other = PostgresSubjectKeys(postgres_url)  # another process's connection
        assert other.destroy("acme", "user:42") == 1
        other.close()
        assert (reader.get(ada).actor.name, reader.get(ada).metadata.email) == (ERASED, ERASED)
        assert reader.get(bob).actor.name == BOB
        with pytest.raises(NotFound):
            erase_subject(log, "user:42")  # erased already: nothing changes
        event = erase_subject(log, "user:43")
        assert event.action == ERASED_ACTION and reader.get(bob).actor.name == ERASED
        with psycopg.connect(postgres_url) as conn:
            assert conn.execute("SELECT count(*) FROM auditbird_subject_keys").fetchone() == (0,)
            erased = sorted(r[0] for r in conn.execute("SELECT subject FROM auditbird_subject_erasures"))
        assert erased == ["user:42", "user:43"]
    finally:
        log.close()
        reader.close()


def test_the_service_on_postgres_erases_through_the_admin_api(postgres_url: str, tmp_path: Path) -> None:
    keys_path = tmp_path / "keys.db"
    keys = KeyStore(keys_path)
    write, admin = (keys.create(workspace="acme", scope=s).secret for s in ("write", "admin"))
    keys.close()
    env = {**os.environ, "AUDITBIRD_KEYS": str(keys_path), "AUDITBIRD_RATE_LIMIT": "0"}
    with serving("--store", postgres_url, cwd=tmp_path, env=env) as base:
        auth = {"Authorization": f"Bearer {write}"}
        event = {"id": "org:1", "action": "user.joined", "actor": {"id": "42", "name": ADA}}
        assert httpx.post(f"{base}/v1/events", json=event, headers=auth, timeout=60).status_code < 300
        with psycopg.connect(postgres_url) as conn:
            stored = " ".join(str(r) for r in conn.execute("SELECT actor FROM audit_log").fetchall())
        assert ADA not in stored and "$erasable:v1:" in stored
        r = httpx.post(f"{base}/v1/subjects/user:42/erase", headers=auth, timeout=60)
        assert r.status_code == 403
        admin_auth = {"Authorization": f"Bearer {admin}"}
        r = httpx.post(f"{base}/v1/subjects/user:42/erase", headers=admin_auth, timeout=60)
        assert r.status_code == 200, r.text
        page = httpx.get(f"{base}/v1/events", headers=admin_auth, timeout=60).json()["data"]
        names = {e["action"]: e["actor"]["name"] for e in page}
        assert names["user.joined"] == ERASED and ADA not in json.dumps(page)
