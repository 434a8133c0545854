"""Two `auditbird serve` replicas on one PostgreSQL database share keys, revokes, viewer links,
idempotency records and the uid secret; so do replicas over Tinybird with keys in PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from .live_server import EXE, serving

pytestmark = pytest.mark.slow  # four server processes and a PostgreSQL cluster: tens of seconds

REVOKE_DEADLINE = 30.0  # generous; the documented bound is the key cache's 1 s, not asserted as time


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("AUDITBIRD_URL", "AUDITBIRD_KEYS")}


def cli(cwd: Path, *args: str) -> str:
    done = subprocess.run([EXE, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def new_key(cwd: Path, *where: str, workspace: str = "acme", scope: str = "admin") -> str:
    out = cli(cwd, "keys", "create", *where, "--workspace", workspace, "--scope", scope)
    return out.strip().splitlines()[-1]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def two_replicas(tmp_path: Path, *args: str, **env: str) -> Iterator[tuple[str, str]]:
    """Two servers, each in a directory of its own (as on two machines): whatever they share,
    they share through the database."""
    with ExitStack() as stack:
        bases = []
        for name in ("replica-a", "replica-b"):
            (tmp_path / name).mkdir()
            bases.append(stack.enter_context(serving(*args, cwd=tmp_path / name, env={**_env(), **env})))
        yield bases[0], bases[1]


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[tuple[str, str]]:
    with two_replicas(tmp_path, "--store", postgres_url) as both:
        yield both


def _stored(postgres_url: str, workspace: str = "acme") -> list[tuple[str, str]]:
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            "SELECT uid, id FROM audit_log WHERE workspace = %s ORDER BY position", (workspace,)
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_a_key_works_on_every_replica_and_a_revoke_is_refused_by_every_replica(
    tmp_path: Path, postgres_url: str, replicas: tuple[str, str]
) -> None:
    a, b = replicas
    key = new_key(tmp_path, "--store", postgres_url)
    assert not list(tmp_path.rglob("*.keys.*"))  # no replica, nor the CLI, made a local keys file
    published = httpx.post(f"{a}/v1/events", json={"id": "m:1", "action": "m.up"}, headers=auth(key))
    assert published.status_code == 201, published.text
    read = httpx.get(f"{b}/v1/events", params={"event_id": "m:1"}, headers=auth(key))
    assert read.status_code == 200, read.text
    assert [e["uid"] for e in read.json()["data"]] == [published.json()["uid"]]
    cli(tmp_path, "keys", "revoke", key.split("_")[1], "--store", postgres_url)
    for base in (a, b):  # both had the key in their cache a moment ago
        deadline = time.monotonic() + REVOKE_DEADLINE
        while time.monotonic() < deadline:
            answer = httpx.get(f"{base}/v1/events", headers=auth(key))
            if answer.status_code != 200:
                break
            time.sleep(0.1)
        assert answer.status_code == 401, answer.text
        assert "keys in its PostgreSQL database" in answer.json()["detail"]
        assert "127.0.0.1" not in answer.json()["detail"]  # no host for a caller without a key


def test_an_idempotency_key_retried_on_the_other_replica_stores_once_and_answers_the_same(
    tmp_path: Path, postgres_url: str, replicas: tuple[str, str]
) -> None:
    a, b = replicas
    key = new_key(tmp_path, "--store", postgres_url)
    body = [{"id": "m:1", "action": "m.up"}, {"id": "m:2", "action": "m.down"}]
    headers = {**auth(key), "Idempotency-Key": "order-1"}
    first = httpx.post(f"{a}/v1/events", json=body, headers=headers)
    again = httpx.post(f"{b}/v1/events", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.content == first.content
    assert [uid for uid, _ in _stored(postgres_url)] == [e["uid"] for e in first.json()["data"]]
    other = httpx.post(f"{b}/v1/events", json=body[:1], headers=headers)
    assert other.status_code == 422  # the same key with another body, on either replica


def test_a_retry_whose_first_answer_was_never_recorded_gets_the_same_uids_on_the_other_replica(
    tmp_path: Path, postgres_url: str, replicas: tuple[str, str]
) -> None:
    a, b = replicas
    key = new_key(tmp_path, "--store", postgres_url)
    event = {"id": "m:1", "action": "m.up", "timestamp": 1_700_000_000_000}
    headers = {**auth(key), "Idempotency-Key": "order-2"}
    first = httpx.post(f"{a}/v1/events", json=event, headers=headers)
    with psycopg.connect(postgres_url) as conn:  # as if A died before recording its answer
        conn.execute("DELETE FROM auditbird_idempotency")
    again = httpx.post(f"{b}/v1/events", json=event, headers=headers)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    # B derives the same uid (the uid secret is the database's, not each replica's): stored once.
    assert again.json()["uid"] == first.json()["uid"]
    assert _stored(postgres_url) == [(first.json()["uid"], "m:1")]


def test_one_idempotency_key_racing_on_both_replicas_stores_once(
    tmp_path: Path, postgres_url: str, replicas: tuple[str, str]
) -> None:
    a, b = replicas
    key = new_key(tmp_path, "--store", postgres_url)
    rounds = 15
    for i in range(rounds):
        barrier = threading.Barrier(4)
        answers: list[httpx.Response] = []
        event = {"id": f"m:{i}", "action": "m.up"}  # no timestamp: each replica would stamp its own

        def post(
            base: str,
            event: dict[str, Any] = event,
            i: int = i,
            barrier: Any = barrier,
            answers: Any = answers,
        ) -> None:
            barrier.wait()
            headers = {**auth(key), "Idempotency-Key": f"race-{i}"}
            answers.append(httpx.post(f"{base}/v1/events", json=event, headers=headers, timeout=60))

        threads = [threading.Thread(target=post, args=(base,)) for base in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.status_code for r in answers] == [201] * 4, [r.text for r in answers]
        assert len({r.content for r in answers}) == 1, [r.text for r in answers]
    stored = _stored(postgres_url)
    assert sorted(i for _, i in stored) == sorted(f"m:{i}" for i in range(rounds))


def test_a_viewer_link_verifies_on_every_replica_until_links_are_revoked(
    tmp_path: Path, postgres_url: str, replicas: tuple[str, str]
) -> None:
    def link(*extra: str) -> str:
        out = cli(tmp_path, "keys", "viewer-link", "--store", postgres_url, "--workspace", "acme", *extra)
        assert "keys database: postgresql://127.0.0.1" in out and "auditbird@" not in out
        return out.strip().splitlines()[-1].split("#vl=", 1)[1]

    old = link()
    for base in replicas:
        answer = httpx.get(f"{base}/v1/viewer/events", headers=auth(old))
        assert answer.status_code == 200, answer.text
    new = link("--revoke-all")
    for base in replicas:  # the secret is read on every use: refused at once, on every replica
        assert httpx.get(f"{base}/v1/viewer/events", headers=auth(old)).status_code == 401
        assert httpx.get(f"{base}/v1/viewer/events", headers=auth(new)).status_code == 200


def test_events_in_tinybird_with_keys_in_postgresql(
    tmp_path: Path, postgres_url: str, tinybird_server: Any
) -> None:
    pytest.importorskip("chdb")
    store = f"tinybird+http://{tinybird_server.token}@{tinybird_server.url.removeprefix('http://')}"
    workspace = f"pgkeys-{uuid.uuid4().hex[:8]}"  # the server's datasource is shared by the session
    password = "pg-password-never-shown"  # the test cluster trusts loopback: libpq never sends it
    keys_url = postgres_url.replace("auditbird@", f"auditbird:{password}@", 1)
    created = cli(
        tmp_path, "keys", "create", "--keys", keys_url, "--workspace", workspace, "--scope", "admin"
    )
    key = created.strip().splitlines()[-1]
    # AUDITBIRD_KEYS: `serve --keys` as the environment gives it to replicas
    with two_replicas(tmp_path, "--store", store, AUDITBIRD_KEYS=keys_url) as (a, b):
        headers = {**auth(key), "Idempotency-Key": "tb-1"}
        event = {"id": "m:1", "action": "m.up", "timestamp": 1_700_000_000_000}
        first = httpx.post(f"{a}/v1/events", json=event, headers=headers)
        again = httpx.post(f"{b}/v1/events", json=event, headers=headers)
        assert first.status_code == again.status_code == 201, (first.text, again.text)
        assert again.content == first.content
        read = httpx.get(f"{b}/v1/events", params={"event_id": "m:1"}, headers=auth(key))
        assert read.status_code == 200, read.text
        assert [e["uid"] for e in read.json()["data"]] == [first.json()["uid"]]
    assert not list(tmp_path.rglob("*.keys.*"))
    logs = "".join(log.read_text() for log in tmp_path.rglob("serve-*.log"))
    assert "keys: postgresql://127.0.0.1" in logs  # where the keys are, said without the password
    assert password not in logs + created
    with psycopg.connect(postgres_url) as conn:
        (records,) = conn.execute("SELECT count(*) FROM auditbird_idempotency").fetchone()
        (events,) = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'audit_log'").fetchone()
    assert records == 1 and events == 0  # keys and records in PostgreSQL, no event table there
