"""The routes Tinybird's CLIs call, over plain HTTP (the CLIs themselves run in
test_tinybird_interop_cli.py): deploy, append and its job, workspace, tokens, the Classic CLI's
parser routes, and the JSON errors for what the local server cannot do.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.plugins.tinybird_server import TinybirdServer
from tests.test_tinybird_local import ndjson, row

PIPE = """NODE {name}_0
SQL >
    SELECT count() AS n FROM audit_log

TYPE endpoint
"""


def deploy(server: TinybirdServer, files: dict[str, str], **params: str) -> httpx.Response:
    parts = [("data_project://", (path, text, "text/plain")) for path, text in files.items()]
    return httpx.post(
        f"{server.url}/v1/deploy", files=parts, params=params, headers=server.headers, timeout=60
    )


@pytest.fixture(scope="module")
def server(tinybird_server_factory: Callable[..., TinybirdServer]) -> TinybirdServer:
    return tinybird_server_factory()


def get(server: TinybirdServer, path: str, **params: Any) -> Any:
    resp = httpx.get(f"{server.url}{path}", params=params, headers=server.headers, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_deploy_check_validates_without_loading(server: TinybirdServer) -> None:
    name = f"p_{uuid.uuid4().hex[:8]}"
    checked = deploy(server, {f"pipes/{name}.pipe": PIPE.format(name=name)}, check="true")
    assert checked.json()["result"] == "success"
    assert checked.json()["deployment"]["new_pipe_names"] == [name]
    assert name not in {p["name"] for p in get(server, "/v0/pipes")["pipes"]}


def test_deploy_loads_new_pipes_and_lists_the_deployment(server: TinybirdServer) -> None:
    name = f"p_{uuid.uuid4().hex[:8]}"
    done = deploy(server, {f"pipes/{name}.pipe": PIPE.format(name=name)}).json()
    assert done["result"] == "success" and done["deployment"]["live"] is True
    assert get(server, f"/v0/pipes/{name}.json")["data"][0].keys() == {"n"}
    deployment_id = done["deployment"]["id"]
    assert get(server, f"/v1/deployments/{deployment_id}")["deployment"]["status"] == "data_ready"
    assert get(server, "/v1/deployments")["deployments"][0]["id"] == deployment_id
    again = deploy(server, {f"pipes/{name}.pipe": PIPE.format(name=name)}).json()
    assert again["result"] == "no_changes"


def test_a_malformed_datafile_fails_the_deploy_naming_the_file(server: TinybirdServer) -> None:
    answer = deploy(server, {"datasources/broken.datasource": "ENGINE MergeTree\n"}).json()
    assert answer["result"] == "failed"
    [error] = answer["deployment"]["errors"]
    assert error["filename"] == "datasources/broken.datasource" and "SCHEMA" in error["error"]
    assert "broken" not in {d["name"] for d in get(server, "/v0/datasources")["datasources"]}


def test_deploy_without_files_is_a_json_400(server: TinybirdServer) -> None:
    resp = httpx.post(f"{server.url}/v1/deploy", headers=server.headers)
    assert resp.status_code == 400 and "data_project" in resp.json()["error"]


def test_v1_append_ingests_ndjson_and_its_job_counts_rows(server: TinybirdServer) -> None:
    ws = f"append-{uuid.uuid4().hex[:8]}"
    body = ndjson([row(ws, 1), row(ws, 2)]) + b'{"uid": 1}\n'
    resp = httpx.post(
        f"{server.url}/v1/datasources/audit_log/append",
        params={"format": "ndjson"},
        content=body,
        headers={**server.headers, "Content-Type": "application/x-ndjson"},
    )
    assert resp.status_code == 200, resp.text
    job = get(server, f"/v0/jobs/{resp.json()['id']}")
    assert job["status"] == "done" and job["kind"] == "import"
    [block] = job["blocks"]
    assert block["process_return"][0]["lines"] == 2 and block["process_return"][0]["quarantine"] == 1
    rows = get(server, "/v0/pipes/list_audit_log.json", ws=ws)["data"]
    assert sorted(r["uid"] for r in rows) == ["u0001", "u0002"]


@pytest.mark.parametrize(
    ("path", "params", "status", "words"),
    [
        ("/v1/datasources/no_such/append", {"format": "ndjson"}, 404, "no_such"),
        ("/v1/datasources/audit_log/append", {"format": "csv"}, 400, "NDJSON"),
        (
            "/v1/datasources/audit_log/append",
            {"format": "ndjson", "url": "https://example.com/x"},
            400,
            "URL",
        ),
        ("/v1/datasources/audit_log/replace", {"format": "ndjson"}, 400, "append"),
    ],
)
def test_appends_the_server_cannot_do_say_why(
    server: TinybirdServer, path: str, params: dict[str, str], status: int, words: str
) -> None:
    resp = httpx.post(f"{server.url}{path}", params=params, content=b"{}\n", headers=server.headers)
    assert resp.status_code == status and words in resp.json()["error"]


def test_workspace_tokens_and_regions(server: TinybirdServer) -> None:
    workspace = get(server, "/v0/workspace")
    assert workspace["name"] and workspace["id"].startswith("w_")
    [token] = get(server, "/v0/tokens")["tokens"]
    assert token["token"] == server.token and token["scopes"] == [{"type": "ADMIN"}]
    created = httpx.post(f"{server.url}/v1/workspaces", params={"name": "my_project"}, headers=server.headers)
    assert created.json()["name"] == "my_project" and created.json()["token"] == server.token
    names = {w["name"] for w in get(server, "/v1/user/workspaces")["workspaces"]}
    assert {"my_project", workspace["name"]} <= names
    assert get(server, "/v0/regions")["regions"][0]["api_host"] == server.url
    # Tokens API (issue #10's scoped tokens): a token needs a scope; a created one is listed by name
    # and scopes, its value answered once and never again.
    refused = httpx.post(f"{server.url}/v0/tokens", params={"name": "x"}, headers=server.headers)
    assert refused.status_code == 400 and "scope" in refused.json()["error"]
    created_token = httpx.post(
        f"{server.url}/v0/tokens",
        params={"name": "reader", "scope": "PIPES:READ:list_audit_log"},
        headers=server.headers,
    )
    assert created_token.status_code == 200, created_token.text
    value = created_token.json()["token"]
    listed = {t["name"]: t for t in get(server, "/v0/tokens")["tokens"]}
    assert listed["reader"]["scopes"] == [{"type": "PIPES:READ", "resource": "list_audit_log"}]
    assert "token" not in listed["reader"] and value not in json.dumps(listed)
    assert get(server, "/v0/tokens/reader")["name"] == "reader"


def test_every_cli_route_wants_the_token(server: TinybirdServer) -> None:
    for path in [
        "/v0/workspace",
        "/v0/tokens",
        "/v0/datasources",
        "/v0/pipes",
        "/v1/deployments",
        "/v0/jobs",
    ]:
        resp = httpx.get(f"{server.url}{path}")
        assert resp.status_code == 403 and "token" in resp.json()["error"].lower(), path


def test_sql_tables_and_sql_replace_for_the_classic_cli(server: TinybirdServer) -> None:
    tables = httpx.post(
        f"{server.url}/v0/sql_tables",
        data={"q": "SELECT * FROM audit_log JOIN other.t USING (uid)", "raising": "true"},
        headers=server.headers,
    )
    assert tables.json()["tables"] == [["", "audit_log"], ["other", "t"]]
    same = httpx.post(
        f"{server.url}/v0/sql_replace",
        data={"q": "select 1 FROM audit_log", "replacements": json.dumps({"audit_log": "audit_log"})},
        headers=server.headers,
    )
    assert same.json()["query"] == "SELECT 1 FROM audit_log"
    renamed = httpx.post(
        f"{server.url}/v0/sql_replace",
        data={"q": "SELECT 1 FROM a", "replacements": json.dumps({"a": "a__v1"})},
        headers=server.headers,
    )
    assert renamed.status_code == 400 and "VERSION" in renamed.json()["error"]


def test_example_url_is_the_pipe_url(server: TinybirdServer) -> None:
    resp = httpx.get(
        f"{server.url}/examples/query.http",
        params={"pipe": "list_audit_log", "format": "json", "token": server.token},
    )
    assert resp.text == f"{server.url}/v0/pipes/list_audit_log.json?token={server.token}"
