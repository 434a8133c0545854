"""No key reads, writes, counts or exports another workspace's events, whatever it sends."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from auditbird.cli import app
from auditbird.query import encode_cursor
from tests.plugins.service import LiveServer


@pytest.fixture
def two(live_server: LiveServer) -> dict[str, object]:
    """Workspaces A and B with one event each on the same stream id, and a key of each scope."""
    tag = uuid.uuid4().hex[:8]
    a, b = f"acme-{tag}", f"globex-{tag}"
    keys = {(ws, scope): live_server.mint(ws, scope) for ws in (a, b) for scope in ("read", "write", "admin")}
    uids = {}
    for ws in (a, b):
        with live_server.client(keys[(ws, "write")]) as c:
            r = c.post(
                "/v1/events",
                json={
                    "id": "shared:1",
                    "action": "secret.made",
                    "actor": {"id": "shared-actor", "name": ws},
                    "targets": [{"id": "t1", "type": "doc"}],
                    "metadata": {"owner": ws},
                },
            )
            assert r.status_code == 201
            uids[ws] = r.json()["uid"]
    return {"a": a, "b": b, "keys": keys, "uids": uids}


def _owners(r: object) -> set[str]:
    data = r.json()["data"]  # type: ignore[attr-defined]
    return {e["metadata"]["owner"] for e in data}


def test_every_read_sees_only_the_keys_workspace(live_server: LiveServer, two: dict) -> None:
    a, b, keys, uids = two["a"], two["b"], two["keys"], two["uids"]
    with live_server.client(keys[(a, "read")]) as c:
        for params in (
            {},
            {"event_id": "shared:1"},
            {"actor_id": "shared-actor"},
            {"target_type": "doc", "target_id": "t1"},
            {"action": "secret.made"},
            {"text": "globex"},
            {"since": 0, "limit": 1000},
            {"cursor": encode_cursor(10**15, "")},
        ):
            r = c.get("/v1/events", params=params)
            assert r.status_code == 200, params
            assert _owners(r) <= {a}, params
        assert c.get("/v1/events", params={"text": "globex"}).json()["data"] == []
        # The other workspace's uid does not exist for this key; its own does.
        assert c.get(f"/v1/events/{uids[b]}").status_code == 404
        assert c.get(f"/v1/events/{uids[a]}").json()["workspace"] == a
        export = c.get("/v1/export", params={"format": "ndjson"}).text
        assert {json.loads(line)["workspace"] for line in export.splitlines()} == {a}
        assert b not in c.get("/v1/export", params={"format": "csv"}).text


@pytest.mark.parametrize("where", ["query", "query-same-as-b", "repeated"])
def test_workspace_parameters_cannot_widen_a_read(live_server: LiveServer, two: dict, where: str) -> None:
    a, b, keys = two["a"], two["b"], two["keys"]
    params: object = {"workspace": b} if where != "repeated" else [("workspace", a), ("workspace", b)]
    with live_server.client(keys[(a, "admin")]) as c:
        for path in ("/v1/events", "/v1/export"):
            r = c.get(path, params=params)  # type: ignore[arg-type]
            if r.status_code == 200:  # only ever the key's own events
                assert b not in r.text
            else:
                assert r.status_code == 403 and r.json()["errors"][0]["loc"] == "workspace"
        assert c.get("/v1/events", params={"workspace": a}).status_code == 200


def test_a_cursor_from_another_workspace_reads_only_your_own(live_server: LiveServer, two: dict) -> None:
    a, b, keys = two["a"], two["b"], two["keys"]
    with live_server.client(keys[(b, "admin")]) as cb:
        cb.post("/v1/events", json=[{"id": "p:1", "action": "page.x"}] * 3).raise_for_status()
        cursor = cb.get("/v1/events", params={"limit": 1}).json()["next_cursor"]
    assert cursor
    with live_server.client(keys[(a, "read")]) as ca:
        r = ca.get("/v1/events", params={"cursor": cursor, "limit": 100})
    assert r.status_code == 200 and all(e["workspace"] == a for e in r.json()["data"])


def test_writes_cannot_target_another_workspace(live_server: LiveServer, two: dict) -> None:
    a, b, keys = two["a"], two["b"], two["keys"]
    with live_server.client(keys[(a, "write")]) as c:
        r = c.post(
            "/v1/events",
            json=[{"id": "x:1", "action": "a.b"}, {"id": "x:2", "action": "a.b", "workspace": b}],
        )
        assert r.status_code == 403 and r.json()["errors"] == [
            {"index": 1, "loc": "workspace", "msg": f"must be {a!r} (the key's workspace) or left out"}
        ]
        r = c.post("/v1/events", params={"workspace": b}, json={"id": "x:3", "action": "a.b"})
        assert r.status_code == 201 and r.json()["workspace"] == a
    with live_server.client(keys[(b, "read")]) as c:
        assert c.get("/v1/events", params={"event_id": "x:1"}).json()["data"] == []
        assert c.get("/v1/events", params={"event_id": "x:3"}).json()["data"] == []


def test_scopes(live_server: LiveServer, two: dict) -> None:
    a, keys = two["a"], two["keys"]
    event = {"id": "s:1", "action": "a.b"}
    with live_server.client(keys[(a, "read")]) as c:
        assert c.post("/v1/events", json=event).status_code == 403
        assert c.get("/v1/events").status_code == 200 and c.get("/v1/actions").status_code == 200
    with live_server.client(keys[(a, "write")]) as c:
        assert c.post("/v1/events", json=event).status_code == 201
        for path in ("/v1/events", f"/v1/events/{two['uids'][a]}", "/v1/export"):
            r = c.get(path)
            assert r.status_code == 403 and "'read' or 'admin'" in r.json()["detail"]
        assert c.get("/v1/actions").status_code == 200
    with live_server.client(keys[(a, "admin")]) as c:
        assert c.post("/v1/events", json=event).status_code == 201 and c.get("/v1/events").status_code == 200
    with live_server.client() as c:
        r = c.get("/v1/events")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    admin = keys[(a, "admin")]
    tampered = admin[:-1] + ("A" if admin[-1] != "A" else "B")  # one character off, never the key itself
    for token in ("nope", "ab_x_y", tampered, "Basic abc"):
        with live_server.client(token) as c:
            assert c.get("/v1/events").status_code == 401


def test_keys_cli_create_list_revoke(live_server: LiveServer, tmp_path, monkeypatch) -> None:
    runner = CliRunner()
    keys_file = str(live_server.keys_path)
    url = f"sqlite:///{live_server.db_path}"
    r = runner.invoke(
        app,
        ["--store", url, "keys", "create", "--workspace", "cli-ws", "--scope", "read", "--keys", keys_file],
    )
    assert r.exit_code == 0, r.output
    secret = r.output.strip().splitlines()[-1]
    assert secret.startswith("ab_") and " " not in secret
    r = runner.invoke(
        app,
        [
            "--store",
            url,
            "keys",
            "create",
            "--workspace",
            "cli-ws",
            "--scope",
            "admin",
            "--json",
            "--name",
            "ci",
            "--keys",
            keys_file,
        ],
    )
    created = json.loads(r.output)
    assert created["scope"] == "admin" and created["name"] == "ci" and created["key"].startswith("ab_")
    listed = runner.invoke(app, ["keys", "list", "--json", "--keys", keys_file]).output
    assert secret.split("_")[1] in listed and secret.split("_", 2)[2] not in listed
    assert created["key"].split("_", 2)[2] not in listed
    with live_server.client(secret) as c:
        assert c.get("/v1/events").status_code == 200
        r = runner.invoke(app, ["keys", "revoke", secret.split("_")[1], "--keys", keys_file])
        assert r.exit_code == 0
        assert c.get("/v1/events").status_code == 401
    again = runner.invoke(app, ["keys", "revoke", secret.split("_")[1], "--keys", keys_file])
    assert again.exit_code == 2
    bad = runner.invoke(app, ["keys", "create", "--workspace", "w", "--scope", "root", "--keys", keys_file])
    assert bad.exit_code == 2
    # Without --keys, the key file is found from the store URL, beside the SQLite file.
    monkeypatch.delenv("AUDITBIRD_KEYS", raising=False)
    found = runner.invoke(app, ["--store", url, "keys", "list", "--json"]).output
    assert created["key_id"] in found
