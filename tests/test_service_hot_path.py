"""The hot path of the service: the lean ``POST /v1/events``, ``Prefer: return=minimal``, the
verified-key cache (and how soon a revoke takes effect), and ``serve --workers`` with ``--actions``."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from auditbird.cli import app as cli_app
from auditbird.service import KeyStore, ServiceLimits, create_app
from auditbird.service.fastpath import LeanPath
from tests.plugins.service import LiveServer

EVENT = {
    "id": "monitor:1",
    "action": "monitor.down",
    "actor": {"id": "1", "name": "mxkaske"},
    "targets": [{"id": "1", "type": "monitor"}, {"id": "2", "name": "page"}],
    "metadata": {"region": "gru", "statusCode": 400, "message": "timeout"},
}


def _event(**changes: Any) -> dict[str, Any]:
    """An event with its own uid and timestamp, so that two servers answer byte for byte alike."""
    return {**EVENT, "uid": str(uuid.uuid4()), "timestamp": 1_700_000_000_000, **changes}


# -- Prefer: return=minimal ---------------------------------------------------------------------


def test_prefer_return_minimal_answers_the_count_and_says_so(live_server: LiveServer) -> None:
    key = live_server.mint(f"min-{uuid.uuid4().hex[:8]}", "write")
    with live_server.client(key) as c:
        full = c.post("/v1/events", json=[_event(), _event()])
        assert full.status_code == 201 and full.json()["count"] == 2 and len(full.json()["data"]) == 2
        assert "preference-applied" not in full.headers
        for prefer in ("return=minimal", "respond-async, return=minimal", "RETURN = minimal"):
            r = c.post("/v1/events", json=[_event(), _event(), _event()], headers={"Prefer": prefer})
            assert r.status_code == 201 and r.json() == {"count": 3}, prefer
            assert r.headers["preference-applied"] == "return=minimal"
        one = c.post("/v1/events", json=_event(), headers={"Prefer": "return=minimal"})
        assert one.status_code == 201 and one.json() == {"count": 1}
        # An idempotent retry answers the same, header included.
        headers = {"Prefer": "return=minimal", "Idempotency-Key": uuid.uuid4().hex}
        body = [_event(uid=None) | {"uid": f"u-{uuid.uuid4().hex}"}]
        first = c.post("/v1/events", json=body, headers=headers)
        again = c.post("/v1/events", json=body, headers=headers)
        assert first.content == again.content == b'{"count":1}'
        assert again.headers["preference-applied"] == "return=minimal"


def test_openapi_still_documents_publish_fully(live_server: LiveServer) -> None:
    with live_server.client() as c:
        op = c.get("/openapi.json").json()["paths"]["/v1/events"]["post"]
    assert op["security"] == [{"HTTPBearer": []}]
    params = {p["name"]: p for p in op["parameters"]}
    assert set(params) == {"idempotency-key", "prefer"}
    assert params["idempotency-key"]["schema"]["anyOf"][0]["maxLength"] == 255
    assert "return=minimal" in params["prefer"]["description"]
    assert "application/x-ndjson" in op["requestBody"]["content"]
    refs = json.dumps(op["responses"]["201"])
    assert "PublishCount" in refs and "EventBatch" in refs and "Event" in refs
    assert {"401", "403", "413", "422", "429", "503"} <= set(op["responses"])


# -- the lean path answers as the routed (dependency-injected) endpoint does ------------------


def _apps(tmp_path: Path) -> tuple[FastAPI, FastAPI, dict[str, str]]:
    """Two apps over one key file: the real one, and one without the lean middleware (every
    request then goes through FastAPI's router and dependency injection)."""
    keys = KeyStore(tmp_path / "k.db")
    tokens = {scope: keys.create(workspace="w", scope=scope).secret for scope in ("read", "write", "admin")}
    limits = ServiceLimits(default_rate=0, max_request_bytes=64 * 1024, max_event_bytes=8 * 1024)
    lean = create_app(f"sqlite:///{tmp_path / 'lean.db'}", keys=keys, limits=limits, metrics_token="m")
    routed = create_app(f"sqlite:///{tmp_path / 'routed.db'}", keys=keys, limits=limits, metrics_token="m")
    routed.user_middleware = [m for m in routed.user_middleware if m.cls is not LeanPath]
    assert any(m.cls is LeanPath for m in lean.user_middleware)
    return lean, routed, tokens


def test_lean_path_answers_exactly_as_the_routed_endpoint(tmp_path: Path) -> None:
    lean, routed, tokens = _apps(tmp_path)
    batch = [_event(), _event(metadata={"region": "ams", "statusCode": 500})]
    big = json.dumps([_event(metadata={"message": "x" * 400}) for _ in range(200)])
    cases: list[tuple[str, dict[str, str], bytes]] = [
        ("", {}, json.dumps(_event()).encode()),  # no key
        ("Basic abc", {}, json.dumps(_event()).encode()),
        ("Bearer ab_nope_nope", {}, json.dumps(_event()).encode()),
        (f"Bearer {tokens['read']}", {}, json.dumps(_event()).encode()),  # wrong scope
        (f"Bearer {tokens['write']}", {"Idempotency-Key": "k" * 256}, json.dumps(_event()).encode()),
        (f"Bearer {tokens['write']}", {}, b"{not json"),
        (f"Bearer {tokens['write']}", {}, b"[]"),
        (f"Bearer {tokens['write']}", {}, b'"a string"'),
        (f"Bearer {tokens['write']}", {}, json.dumps([{"id": "", "action": "x"}, _event()]).encode()),
        (f"Bearer {tokens['write']}", {}, json.dumps(_event(workspace="other")).encode()),
        (f"Bearer {tokens['write']}", {}, big.encode()),  # over the request limit: 413
        (f"Bearer {tokens['write']}", {}, json.dumps(_event()).encode()),
        (f"Bearer {tokens['admin']}", {}, json.dumps(batch).encode()),
        (f"Bearer {tokens['admin']}", {"Prefer": "return=minimal"}, json.dumps(batch).encode()),
        (
            f"bearer {tokens['admin']}",
            {"Content-Type": "application/x-ndjson"},
            b"\n".join(json.dumps(e).encode() for e in batch),
        ),
    ]
    with TestClient(lean) as a, TestClient(routed) as b:
        for auth, extra, body in cases:
            headers = {"Content-Type": "application/json", **extra}
            if auth:
                headers["Authorization"] = auth
            x = a.post("/v1/events", content=body, headers=headers)
            y = b.post("/v1/events", content=body, headers=headers)
            where = (auth[:12], extra, body[:40])
            assert (x.status_code, x.content) == (y.status_code, y.content), where
            for name in ("content-type", "www-authenticate", "preference-applied", "retry-after"):
                assert x.headers.get(name) == y.headers.get(name), (name, where)
        # Both were counted under the route template.
        for client in (a, b):
            scraped = client.get("/metrics", headers={"Authorization": "Bearer m"}).text
            assert 'route="/v1/events",status="201"' in scraped


def test_bad_unicode_in_the_body_is_a_400_not_a_500(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "k.db")
    token = keys.create(workspace="w", scope="write").secret
    app = create_app(f"sqlite:///{tmp_path / 'a.db'}", keys=keys, limits=ServiceLimits(default_rate=0))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with TestClient(app, raise_server_exceptions=False) as c:
        lone_surrogate = b'{"id": "a:1", "action": "a.b", "metadata": {"s": "\\ud800"}}'
        for body in (lone_surrogate, b'{"id": "a:1", "action": "a.b\xff"}'):
            r = c.post("/v1/events", content=body, headers=headers)
            assert r.status_code == 400, r.text
            assert r.headers["content-type"] == "application/problem+json"


# -- the verified-key cache -----------------------------------------------------------------------


def test_cached_key_still_checks_the_secret_in_constant_time(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "k.db", cache_seconds=60)
    token = keys.create(workspace="w", scope="read").secret
    assert keys.verify(token) is not None  # now cached
    assert keys.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert keys.verify(token.rsplit("_", 1)[0] + "_") is None
    assert keys.verify(token).workspace == "w"  # type: ignore[union-attr]


def test_revoke_in_this_process_takes_effect_at_once(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "k.db", cache_seconds=60)
    created = keys.create(workspace="w", scope="write")
    assert keys.verify(created.secret) is not None
    assert keys.revoke(created.key.key_id)
    assert keys.verify(created.secret) is None


def test_revoke_by_another_process_is_seen_on_the_next_request(tmp_path: Path) -> None:
    server = KeyStore(tmp_path / "k.db", cache_seconds=60)
    created = server.create(workspace="w", scope="write")
    assert server.verify(created.secret) is not None
    cli = KeyStore(tmp_path / "k.db")  # another connection, as `auditbird keys revoke` opens
    assert cli.revoke(created.key.key_id)
    cli.close()
    assert server.verify(created.secret) is None


def test_revoke_takes_effect_within_cache_seconds_even_unnoticed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound: even if the file change were missed, a cached key lives at most cache_seconds."""
    server = KeyStore(tmp_path / "k.db", cache_seconds=0.3)
    created = server.create(workspace="w", scope="write")
    monkeypatch.setattr(server, "_file_stamp", lambda: (1, 1))  # never sees a change
    assert server.verify(created.secret) is not None
    revoked_at = time.monotonic()
    other = KeyStore(tmp_path / "k.db")
    assert other.revoke(created.key.key_id)
    other.close()
    while server.verify(created.secret) is not None:
        assert time.monotonic() - revoked_at <= 0.3 + 0.1, "a revoked key outlived the cache bound"
        time.sleep(0.01)


def test_cache_off_reads_the_file_every_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = KeyStore(tmp_path / "k.db", cache_seconds=0)
    created = server.create(workspace="w", scope="write")
    monkeypatch.setattr(server, "_file_stamp", lambda: (1, 1))
    assert server.verify(created.secret) is not None
    other = KeyStore(tmp_path / "k.db")
    other.revoke(created.key.key_id)
    other.close()
    assert server.verify(created.secret) is None


# -- serve --workers N ------------------------------------------------------------------------------


def test_serve_hands_actions_to_worker_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    for name in ("AUDITBIRD_ACTIONS", "AUDITBIRD_URL", "AUDITBIRD_KEYS", "AUDITBIRD_STRICT"):
        monkeypatch.setenv(name, "")  # restored after the test: serve writes them for its workers
    seen: dict[str, Any] = {}

    def fake_run(target: str, **options: Any) -> None:
        seen.update(options, target=target, actions=os.environ.get("AUDITBIRD_ACTIONS"))

    monkeypatch.setattr(uvicorn, "run", fake_run)
    db = f"sqlite:///{tmp_path / 'a.db'}"
    r = CliRunner().invoke(
        cli_app,
        ["--store", db, "--actions", "auditbird.catalog.openstatus", "serve", "--workers", "2"],
    )
    assert r.exit_code == 0, r.output
    assert seen["workers"] == 2 and seen["factory"] is True
    assert seen["actions"] == "auditbird.catalog.openstatus"
