"""Issue 10 over the routes of issue 9 (what Tinybird's CLIs call: workspace, tokens, deploy, push,
append, jobs, listings, examples): the Host check, token scopes and log redaction hold on each,
against a real server subprocess on loopback with real chDB.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.plugins.tinybird_server import TinybirdServer
from tests.test_tinybird_local import ndjson
from tests.test_tinybird_local import row as local_row

PIPE = "list_audit_log"


@pytest.fixture(scope="module")
def server(tinybird_server_factory: Callable[..., TinybirdServer]) -> TinybirdServer:
    """A server of our own, so that its log holds only what these tests did."""
    return tinybird_server_factory()


def make_token(server: TinybirdServer, name: str, *scopes: str) -> str:
    answer = httpx.post(
        f"{server.url}/v0/tokens",
        params=[("name", name), *(("scope", s) for s in scopes)],
        headers=server.headers,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def row() -> bytes:
    return ndjson([local_row("sec-" + uuid.uuid4().hex, 1)])


def call(server: TinybirdServer, method: str, path: str, token: str, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


ADMIN_ONLY = [
    ("GET", "/v0/workspace", {}),
    ("GET", "/v1/user/workspaces", {}),
    ("POST", "/v1/workspaces", {"params": {"name": "stolen"}}),
    ("DELETE", "/v1/workspaces/auditbird_local", {}),
    ("GET", "/v0/tokens", {}),
    ("GET", "/v0/tokens/admin%20token", {}),
    ("POST", "/v0/tokens", {"params": {"name": "more", "scope": "ADMIN"}}),
    (
        "POST",
        "/v1/deploy",
        {"files": [("data_project://", ("x.pipe", "NODE n\nSQL >\n    SELECT 1\n", "text/plain"))]},
    ),
    ("GET", "/v1/deployments", {}),
    ("GET", "/v0/jobs", {}),
    (
        "POST",
        "/v0/pipes",
        {"content": json.dumps({"name": "pushed", "nodes": [{"name": "n", "sql": "SELECT 1"}]})},
    ),
    ("POST", "/v0/datasources", {"params": {"mode": "create", "name": "ds2", "schema": "a String"}}),
    ("POST", "/v1/datasources/audit_log/replace", {"content": b"{}\n"}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), ADMIN_ONLY, ids=[f"{m} {p}" for m, p, _ in ADMIN_ONLY])
def test_cli_routes_that_change_or_reveal_the_workspace_need_the_admin_token(
    server: TinybirdServer, method: str, path: str, kwargs: dict[str, object]
) -> None:
    scoped = make_token(server, "scoped", f"PIPES:READ:{PIPE}", "DATASOURCES:APPEND:audit_log")
    answer = call(server, method, path, scoped, **kwargs)
    assert answer.status_code == 403, answer.text
    assert "admin token" in answer.json()["error"]
    assert server.token not in answer.text
    assert "stolen" not in {
        w["name"] for w in call(server, "GET", "/v1/user/workspaces", server.token).json()["workspaces"]
    }


def test_appends_need_the_datasources_append_scope(server: TinybirdServer) -> None:
    writer = make_token(server, "writer", "DATASOURCES:APPEND:audit_log")
    reader = make_token(server, "reader", f"PIPES:READ:{PIPE}")
    v1 = "/v1/datasources/audit_log/append"
    v0 = ("/v0/datasources", {"mode": "append", "name": "audit_log"})
    assert call(server, "POST", v1, reader, content=row()).status_code == 403
    assert call(server, "POST", v0[0], reader, params=v0[1], content=row()).status_code == 403
    appended = call(server, "POST", v1, writer, content=row())
    assert appended.status_code == 200, appended.text
    assert appended.json()["blocks"][0]["process_return"][0]["lines"] == 1
    classic = call(server, "POST", v0[0], writer, params=v0[1], files={"ndjson": ("rows.ndjson", row())})
    assert classic.status_code == 200, classic.text
    # An append token sees the definition of what it appends to, nothing else; it reads no rows.
    assert [d["name"] for d in call(server, "GET", "/v0/datasources", writer).json()["datasources"]] == [
        "audit_log"
    ]
    assert call(server, "GET", "/v0/datasources", reader).json() == {"datasources": []}
    assert call(server, "GET", "/v0/datasources/audit_log", reader).status_code == 403
    assert call(server, "GET", f"/v0/pipes/{PIPE}.json", writer).status_code == 403


def test_a_read_token_reads_its_pipe_by_name_pipeline_and_q_and_nothing_else(server: TinybirdServer) -> None:
    reader = make_token(server, "pipe-reader", f"PIPES:READ:{PIPE}")
    by_name = call(
        server, "GET", "/v0/sql", reader, params={"q": "SELECT count() AS n FROM list_audit_log FORMAT JSON"}
    )
    assert by_name.status_code == 200, by_name.text
    over = call(
        server, "GET", "/v0/sql", reader, params={"q": "SELECT count() AS n FROM _", "pipeline": PIPE}
    )
    assert over.status_code == 200, over.text
    other = call(
        server,
        "GET",
        "/v0/sql",
        reader,
        params={"q": "SELECT count() FROM _", "pipeline": "endpoint_audit_log"},
    )
    assert other.status_code == 403 and "PIPES:READ:endpoint_audit_log" in other.json()["error"]
    for query in ("SELECT count() FROM audit_log", "SELECT name FROM system.tables"):
        answer = call(server, "GET", f"/v0/pipes/{PIPE}.json", reader, params={"q": query})
        assert answer.status_code == 403, (query, answer.text)
    q_over = call(server, "GET", f"/v0/pipes/{PIPE}.json", reader, params={"q": "SELECT count() AS n FROM _"})
    assert q_over.status_code == 200 and "n" in q_over.json()["data"][0]
    listed = [p["name"] for p in call(server, "GET", "/v0/pipes", reader).json()["pipes"]]
    assert listed == [PIPE]
    assert call(server, "GET", "/v0/pipes/endpoint_audit_log", reader).status_code == 403
    example = call(server, "GET", "/examples/query.http", reader, params={"pipe": PIPE})
    assert example.status_code == 200 and reader in example.text and server.token not in example.text


@pytest.mark.parametrize("path", ["/v0/workspace", "/v0/regions", "/v1/deployments", "/v0/pipes", "/nowhere"])
def test_a_foreign_host_header_is_refused_on_the_cli_routes(server: TinybirdServer, path: str) -> None:
    answer = call(server, "GET", path, server.token, headers={"Host": "evil.example"})
    assert answer.status_code == 403 and "Host" in answer.json()["error"], answer.text
    assert server.token not in answer.text


def test_a_foreign_host_header_is_refused_on_writes(server: TinybirdServer) -> None:
    """The Events API streams its body: the Host check still comes first, and nothing is written."""
    evil = {"Host": "evil.example"}
    workspace = "evil-" + uuid.uuid4().hex
    body = ndjson([local_row(workspace, 1)])
    for path in ("/v0/events?name=audit_log&wait=true", "/v1/datasources/audit_log/append"):
        answer = call(server, "POST", path, server.token, headers=evil, content=body)
        assert answer.status_code == 403 and "Host" in answer.json()["error"], (path, answer.text)
    rows = call(server, "GET", f"/v0/pipes/{PIPE}.json", server.token, params={"workspace": workspace})
    assert rows.status_code == 200 and rows.json()["data"] == []


def test_no_token_in_the_log_of_the_cli_routes(server: TinybirdServer) -> None:
    reader = make_token(server, "log-reader", f"PIPES:READ:{PIPE}")
    for secret in (server.token, reader):
        for path in ("/v0/workspace", "/v1/deployments", "/v0/jobs/nope", "/v0/tokens", "/v0/regions"):
            httpx.get(f"{server.url}{path}", params={"token": secret}, timeout=10)
        httpx.get(f"{server.url}/examples/query.http", params={"token": secret, "pipe": PIPE}, timeout=10)
        httpx.post(f"{server.url}/v1/datasources/audit_log/append", params={"token": secret}, content=b"x\n")
    assert server.log is not None
    log = server.log.read_text()
    # The access log is there (its refusals at least: the CLI logs warnings), and redacted.
    assert "/v0/workspace?token=[redacted]" in log and "/v1/datasources/audit_log/append" in log
    assert server.token not in log and reader not in log
