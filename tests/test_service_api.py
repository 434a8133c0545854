"""The REST API end to end against a real server on loopback."""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest

from auditbird import (
    AsyncAuditLog,
    AuditError,
    AuditLog,
    AuditValidationError,
    StoreUnavailable,
    UnsupportedOperation,
)
from auditbird import Query as LibQuery
from auditbird.stores.service import ServiceStore
from tests.plugins.service import LiveServer, free_port

SEED = {
    "id": "monitor:1",
    "action": "monitor.down",
    "targets": [{"id": "1", "type": "monitor"}],
    "metadata": {"region": "gru", "statusCode": 400, "message": "timeout"},
}


@pytest.fixture
def ws() -> str:
    return f"ws-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def admin(live_server: LiveServer, ws: str) -> str:
    return live_server.mint(ws, "admin")


def test_publish_one_event_returns_it_with_defaults(live_server: LiveServer, admin: str, ws: str) -> None:
    with live_server.client(admin) as c:
        r = c.post("/v1/events", json=SEED)
    assert r.status_code == 201
    body = r.json()
    assert body["id"] == "monitor:1" and body["workspace"] == ws
    assert body["actor"] == {"id": "", "name": "system"}
    assert body["targets"] == [{"id": "1", "type": "monitor"}]
    assert body["version"] == 1 and len(body["uid"]) == 36 and body["timestamp"] > 1_700_000_000_000


def test_publish_array_and_ndjson(live_server: LiveServer, admin: str) -> None:
    with live_server.client(admin) as c:
        r = c.post("/v1/events", json=[{"id": "a:1", "action": "a.b"}, {"id": "a:2", "action": "a.c"}])
        assert r.status_code == 201 and r.json()["count"] == 2
        assert [e["id"] for e in r.json()["data"]] == ["a:1", "a:2"]
        lines = "\n".join(json.dumps({"id": f"n:{i}", "action": "n.x"}) for i in range(3)) + "\n"
        r = c.post("/v1/events", content=lines, headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 201 and r.json()["count"] == 3
        r = c.post("/v1/events", json=[{"id": "m:1", "action": "m.x"}], headers={"Prefer": "return=minimal"})
        assert r.json() == {"count": 1}
        got = c.get("/v1/events", params={"action": ["a.b", "a.c", "n.x", "m.x"], "limit": 100}).json()
    assert sorted(e["id"] for e in got["data"]) == ["a:1", "a:2", "m:1", "n:0", "n:1", "n:2"]


def test_bad_batch_lists_every_bad_field_and_stores_nothing(live_server: LiveServer, admin: str) -> None:
    bad = [
        {"id": "ok:1", "action": "ok.one"},
        {"id": "", "action": "nodot", "timestamp": "yesterday"},
        {"id": "ok:3", "action": "ok.three", "targets": [{"id": "1"}]},
    ]
    with live_server.client(admin) as c:
        r = c.post("/v1/events", json=bad)
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["status"] == 422 and problem["title"] == "Unprocessable Entity"
        where = {(e["index"], e["loc"]) for e in problem["errors"]}
        assert where == {(1, "id"), (1, "action"), (1, "timestamp"), (2, "targets.0")}
        assert c.get("/v1/events", params={"action": ["ok.one", "ok.three"]}).json()["data"] == []


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"42", "application/json", 422),
        (b"[]", "application/json", 422),
        (b'{"id": "x:1", "action": "a.b"}\nnope\n', "application/x-ndjson", 400),
        (b"[" * 100_000, "application/json", 400),
        (b'{"id": "x:1", "action": "a.b", "metadata": {"x": NaN}}', "application/json", 422),
        (b'{"id": "x:1", "action": "a.b", "metadata": [1]}', "application/json", 422),
        (b'{"id": "x:1", "action": "a.b", "surprise": 1}', "application/json", 422),
    ],
)
def test_malformed_bodies_are_problems_not_500s(
    live_server: LiveServer, admin: str, body: bytes, content_type: str, status: int
) -> None:
    with live_server.client(admin) as c:
        r = c.post("/v1/events", content=body, headers={"Content-Type": content_type})
    assert r.status_code == status
    assert r.json()["status"] == status and r.json()["detail"]


def test_list_filters_cursor_and_get(live_server: LiveServer, admin: str) -> None:
    ts = 1_700_000_000_000
    events = [
        {
            "id": f"monitor:{i % 2}",
            "action": "monitor.down" if i % 2 else "monitor.recovered",
            "actor": {"id": f"u{i % 3}", "name": "x"},
            "targets": [{"id": str(i), "type": "monitor"}],
            "timestamp": ts + i * 1000,
            "metadata": {"n": i},
        }
        for i in range(10)
    ]
    with live_server.client(admin) as c:
        c.post("/v1/events", json=events).raise_for_status()

        def ns(**params: object) -> list[int]:
            return [e["metadata"]["n"] for e in c.get("/v1/events", params=params).json()["data"]]

        assert ns(event_id="monitor:1") == [9, 7, 5, 3, 1]
        assert ns(action="monitor.recovered", actor_id="u0") == [6, 0]
        assert ns(target_type="monitor", target_id="4") == [4]
        assert ns(since=ts + 2000, until=ts + 5000) == [4, 3, 2]
        assert ns(since="2023-11-14T22:13:22Z", until=str(ts + 3000)) == [2]
        seen, cursor = [], None
        while True:
            page = c.get("/v1/events", params={"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
            seen += [e["metadata"]["n"] for e in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(range(9, -1, -1))
        uid = c.get("/v1/events", params={"limit": 1}).json()["data"][0]["uid"]
        assert c.get(f"/v1/events/{uid}").json()["metadata"] == {"n": 9}
        missing = c.get(f"/v1/events/{uuid.uuid4()}")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        for params in ({"limit": 0}, {"limit": 1001}, {"cursor": "garbage"}, {"since": "last tuesday"}):
            r = c.get("/v1/events", params=params)
            assert r.status_code == 422, params
            assert r.json()["errors"][0]["loc"].endswith(next(iter(params))), r.json()


def test_reads_are_recorded_and_hidden_unless_asked_for(live_server: LiveServer, admin: str, ws: str) -> None:
    with live_server.client(admin) as c:
        c.post("/v1/events", json={"id": "s:1", "action": "thing.done"}).raise_for_status()
        assert [e["action"] for e in c.get("/v1/events").json()["data"]] == ["thing.done"]
        assert [e["action"] for e in c.get("/v1/events").json()["data"]] == ["thing.done"]
        c.get("/v1/export", params={"format": "ndjson"}).raise_for_status()
        views = c.get("/v1/events", params={"action": "audit_log.viewed"}).json()["data"]
        exports = c.get("/v1/events", params={"action": "audit_log.exported"}).json()["data"]
    assert len(views) == 2 and len(exports) == 1
    assert views[0]["workspace"] == ws and views[0]["actor"]["type"] == "api_key"
    assert views[0]["metadata"]["count"] == 1 and exports[0]["metadata"]["format"] == "ndjson"


def test_export_streams_csv_with_formulas_neutralised(live_server: LiveServer, admin: str) -> None:
    with live_server.client(admin) as c:
        c.post(
            "/v1/events",
            json=[
                {
                    "id": '=HYPERLINK("http://x")',
                    "action": "doc.shared",
                    "actor": {"id": "+1", "name": "@me"},
                },
                {"id": "doc:2", "action": "doc.shared", "metadata": {"k": "-2"}},
            ],
        ).raise_for_status()
        r = c.get("/v1/export", params={"format": "csv", "action": "doc.shared"})
        nd = c.get("/v1/export", params={"action": "doc.shared"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 2
    first = next(row for row in rows if row["id"] != "doc:2")
    assert first["id"] == '\'=HYPERLINK("http://x")'
    assert first["actor_id"] == "'+1" and first["actor_name"] == "'@me"
    assert nd.headers["content-type"] == "application/x-ndjson"
    assert sorted(json.loads(line)["id"] for line in nd.text.splitlines()) == [
        '=HYPERLINK("http://x")',
        "doc:2",
    ]


def test_actions_health_metrics_and_openapi(live_server: LiveServer, admin: str) -> None:
    with live_server.client(admin) as c:
        assert c.get("/v1/actions").status_code == 200 and isinstance(c.get("/v1/actions").json(), dict)
        assert c.get("/healthz").json() == {"status": "ok"}
        c.post("/v1/events", json={"id": "x:1", "action": "a.b"}).raise_for_status()
        text = c.get("/metrics").text
        spec = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
    # Open (no metrics token): only what no request moves; requests, latency, store errors and
    # events are the metrics token's holder's (tests/test_security_metrics_open.py).
    assert 'auditbird_build_info{version="' in text
    assert "auditbird_http_request" not in text and "auditbird_events_written" not in text
    assert "auditbird_store_errors" not in text
    assert {"/v1/events", "/v1/events/{uid}", "/v1/export", "/v1/actions", "/healthz", "/metrics"} <= set(
        spec["paths"]
    )
    event_schema = spec["components"]["schemas"]["Event"]
    assert {"id", "action", "actor", "targets", "timestamp", "metadata", "uid"} <= set(
        event_schema["properties"]
    )
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][0] == {"$ref": "#/components/schemas/Event"}
    assert "bearerAuth" in str(spec["components"]["securitySchemes"]) or spec["components"]["securitySchemes"]


def test_python_client_is_one_more_store(live_server: LiveServer, admin: str, ws: str) -> None:
    with AuditLog(live_server.url, api_key=admin, workspace=ws) as log:
        stored = log.publish_audit_log(SEED)
        assert [e.uid for e in log.get_audit_log(event_id="monitor:1")] == [stored.uid]
        log.publish_many(
            [{"id": f"b:{i}", "action": "bulk.add", "timestamp": 1_700_000_000_000 + i} for i in range(2500)]
        )
        assert len(list(log.iter_events(action="bulk.add", page_size=1000))) == 2500
        assert len(log.list(action="bulk.add", limit=2000)) == 2000
        with pytest.raises(AuditValidationError) as info:
            log.store.append([log._prepare_one({"id": "x:1", "action": "a.b"})[1]._replace(action="bad")])
        assert info.value.problems[0].loc == "action"
        with pytest.raises(UnsupportedOperation):
            log.store.query(LibQuery(workspace=ws, order="position"))
    with (
        AuditLog(live_server.url, api_key=admin, workspace="elsewhere") as wrong,
        pytest.raises(AuditError, match="may not"),
    ):
        wrong.publish_audit_log(SEED)
    with (
        AuditLog(live_server.url, api_key="ab_nope_nope") as bad_key,
        pytest.raises(AuditError, match="refused the API key"),
    ):
        bad_key.list()
    with AuditLog(f"http://127.0.0.1:{free_port()}", api_key=admin) as down, pytest.raises(StoreUnavailable):
        down.publish_audit_log(SEED)
    with pytest.raises(AuditError, match="needs an API key"):
        ServiceStore(live_server.url, api_key="")


async def test_async_client_uses_native_httpx(live_server: LiveServer, admin: str, ws: str) -> None:
    async with AsyncAuditLog(live_server.url, api_key=admin, workspace=ws) as log:
        assert type(log.store).__name__ == "AsyncServiceStore"
        stored = await log.publish_many([{"id": "as:1", "action": "a.b"}, {"id": "as:1", "action": "a.c"}])
        got = await log.get_audit_log(event_id="as:1")
        assert sorted(e.uid for e in got) == sorted(e.uid for e in stored)
        assert (await log.get(stored[0].uid)) is not None
