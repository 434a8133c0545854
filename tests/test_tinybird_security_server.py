# ruff: noqa: S608  (the SQL built here is the attack under test)
"""Issue 10.1-10.3, end to end: each attack on the local Tinybird server, against a real server
subprocess on loopback with real chDB. Every test here succeeded as an attack on the code before
the fix (see the report of issue 10) and must now be refused.
"""

from __future__ import annotations

import gzip
import http.server
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.plugins.tinybird_server import TinybirdServer

SECRET = "viewer-link-secret-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def server(tinybird_server_factory: Callable[..., TinybirdServer]) -> TinybirdServer:
    """A server of our own, so that its log holds only what these tests did."""
    return tinybird_server_factory()


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stands for the service's audit.keys.db next to the server: what an attacker wants to read."""
    path = tmp_path_factory.mktemp("keys") / "audit.keys.db"
    path.write_text(f"link_secret={SECRET}\n")
    return path


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records every request: a url() that reached it would show."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"a\n")

        def log_message(self, *args: Any) -> None:
            return None

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def admin_token(server: TinybirdServer) -> str:
    """The attacker's first step in issue 10: the token from GET /tokens, no auth needed."""
    answer = httpx.get(f"{server.url}/tokens", timeout=10)
    assert answer.status_code == 200
    return str(answer.json()["admin_token"])


def sql(server: TinybirdServer, query: str, token: str | None = None, **params: str) -> httpx.Response:
    token = token or admin_token(server)
    return httpx.get(
        f"{server.url}/v0/sql",
        params={"q": query, **params},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


# -- 10.1: code execution through a template ---------------------------------------------------------


def test_the_comment_bypass_does_not_run_a_shell_command(server: TinybirdServer, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"String(defined.__globals__['builtins'].__import__('os').popen('touch {marker}; id').read())"
    answer = sql(server, "%\nSELECT {# {{ 1 #}{{ " + payload + " }}")
    assert answer.status_code == 400, answer.text
    assert "uid=" not in answer.text and not marker.exists()
    assert "not allowed" in answer.json()["error"]


# -- 10.2: /v0/sql and the filesystem / network ------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM `file`('{keys}', 'RawBLOB')",
        "SELECT * FROM \"file\"('{keys}', 'RawBLOB')",
        "SELECT 1 AS a$$, file('{keys}') AS y$$",  # the heredoc of issue 10
        "SELECT a$$, * FROM file('{keys}', 'RawBLOB') AS y$$",
        "SELECT file('{keys}')",
        "SELECT * FROM file('{keys}', 'RawBLOB') -- $$",
        "SELECT 1 # '\n, * FROM file('{keys}', 'RawBLOB') -- '",
        "SELECT * FROM `fil`||`e`('{keys}')",
        "SELECT * FROM merge(REGEXP('.*'))",
        "SELECT * FROM system.tables",
        "SELECT name FROM information_schema.tables",
        "SELECT 1 WHERE 'x' IN system.users",
        "SELECT hostName(), currentUser()",
        "SELECT * FROM audit_log SETTINGS readonly = 0",
        "SELECT sleep(3)",
    ],
)
def test_sql_cannot_read_files_or_the_server(server: TinybirdServer, keys_file: Path, query: str) -> None:
    answer = sql(server, query.replace("{keys}", str(keys_file)))
    # system.* / information_schema.*: a resource out of reach, 403 as Tinybird answers; else 400.
    outside = "system." in query or "information_schema." in query
    assert answer.status_code == (403 if outside else 400), answer.text
    assert SECRET not in answer.text
    assert answer.json()["error"]


def test_sql_cannot_reach_the_network(server: TinybirdServer, listener: tuple[str, list[str]]) -> None:
    url, hits = listener
    for query in (
        f"SELECT * FROM url('{url}/a', 'LineAsString')",
        f"SELECT * FROM \"url\"('{url}/b', 'LineAsString')",
        f"SELECT * FROM s3('{url}/c', 'LineAsString')",
        "SELECT * FROM remote('127.0.0.1:9000', system.one)",
    ):
        answer = sql(server, query)
        assert answer.status_code == 400, (query, answer.text)
    assert hits == []


def test_sql_cannot_write_files(server: TinybirdServer, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    for query in (
        f"SELECT 1 INTO OUTFILE '{target}'",
        f"SELECT 1 INTO OUTFILE '{target}' FORMAT CSV",
        f"SELECT 1 UNION ALL SELECT 2 INTO OUTFILE '{target}' TRUNCATE",
        f"SELECT 1 AS a$$ INTO OUTFILE '{target}' FORMAT CSV -- $$",  # heredoc-hidden, as in issue 10
        f"INSERT INTO FUNCTION file('{target}', 'CSV') SELECT 1",
    ):
        answer = sql(server, query)
        assert answer.status_code == 400, (query, answer.text)
    assert not target.exists()


def test_every_query_runs_with_limits(server: TinybirdServer) -> None:
    too_many = sql(server, "SELECT arrayJoin(range(2000000)) AS n")
    assert too_many.status_code == 400, too_many.text
    assert "Limit for result exceeded" in too_many.json()["error"]
    assert sql(server, "SELECT arrayJoin(range(3)) AS n FORMAT JSON").json()["rows"] == 3


def test_allowed_queries_still_work(server: TinybirdServer) -> None:
    ok = [
        "WITH t AS (SELECT uid FROM audit_log) SELECT count() AS c FROM t UNION ALL SELECT 1",
        "SELECT countIf(version > 0) AS c, arrayMap(x -> x + 1, [1]) AS m FROM audit_log",
        "SELECT count() AS c FROM audit_log_quarantine",
        "SELECT c FROM (SELECT count() AS c FROM audit_log) WHERE c IN (SELECT 0)",
    ]
    for query in ok:
        answer = sql(server, query + " FORMAT JSON")
        assert answer.status_code == 200, (query, answer.text)


# -- 10.3: tokens, Host, /tokens, logs -----------------------------------------------------------------


def _make_token(server: TinybirdServer, name: str, *scopes: str) -> str:
    answer = httpx.post(
        f"{server.url}/v0/tokens",
        params=[("name", name), *(("scope", s) for s in scopes)],
        headers={"Authorization": f"Bearer {admin_token(server)}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def test_a_pipe_read_token_reads_its_pipe_and_nothing_else(server: TinybirdServer) -> None:
    token = _make_token(server, "reader", "PIPES:READ:list_audit_log")
    bearer = {"Authorization": f"Bearer {token}"}
    base = server.url
    assert httpx.get(f"{base}/v0/pipes/list_audit_log.json", headers=bearer).status_code == 200
    assert httpx.get(f"{base}/v0/pipes/endpoint_audit_log.json?event_id=x", headers=bearer).status_code == 403
    write = httpx.post(f"{base}/v0/events", params={"name": "audit_log"}, content=b"{}", headers=bearer)
    assert write.status_code == 403
    arbitrary = sql(server, "SELECT count() FROM audit_log", token=token)
    assert arbitrary.status_code == 403 and "audit_log" in arbitrary.json()["error"]
    assert httpx.post(f"{base}/v0/tokens?name=x&scope=ADMIN", headers=bearer).status_code == 403
    listed = httpx.get(f"{base}/v0/datasources", headers=bearer).json()
    assert listed == {"datasources": []}


def test_an_append_token_appends_and_cannot_read(server: TinybirdServer) -> None:
    token = _make_token(server, "writer", "DATASOURCES:APPEND:audit_log")
    bearer = {"Authorization": f"Bearer {token}"}
    row = {"uid": "u1", "workspace": "sec-" + uuid.uuid4().hex, "id": "m:1", "action": "a.b", "timestamp": 1}
    body = gzip.compress(json.dumps(row).encode())
    sent = httpx.post(
        f"{server.url}/v0/events",
        params={"name": "audit_log", "wait": "true"},
        content=body,
        headers={**bearer, "Content-Encoding": "gzip"},
    )
    assert sent.status_code == 200, sent.text
    assert httpx.get(f"{server.url}/v0/pipes/list_audit_log.json", headers=bearer).status_code == 403
    assert sql(server, "SELECT 1", token=token).status_code == 200  # no table: nothing to scope
    assert sql(server, "SELECT uid FROM audit_log", token=token).status_code == 403


def test_unknown_scopes_are_refused(server: TinybirdServer) -> None:
    answer = httpx.post(
        f"{server.url}/v0/tokens",
        params={"name": "x", "scope": "PIPES:WRITE:everything"},
        headers={"Authorization": f"Bearer {admin_token(server)}"},
    )
    assert answer.status_code == 400 and "PIPES:READ" in answer.json()["error"]


@pytest.mark.parametrize("path", ["/tokens", "/v0/sql?q=SELECT+1", "/v0/pipes/list_audit_log.json", "/"])
def test_a_foreign_host_header_is_refused(server: TinybirdServer, path: str) -> None:
    token = admin_token(server)
    for host in (f"evil.example:{server.port}", "evil.example", f"127.0.0.1.nip.io:{server.port}"):
        answer = httpx.get(
            f"{server.url}{path}", headers={"Host": host, "Authorization": f"Bearer {token}"}, timeout=10
        )
        assert answer.status_code == 403, (host, answer.text)
        assert token not in answer.text
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "localhost"):
        answer = httpx.get(
            f"{server.url}{path}", headers={"Host": host, "Authorization": f"Bearer {token}"}, timeout=10
        )
        assert answer.status_code == 200, (host, answer.text)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"},
    ],
)
def test_tokens_are_not_handed_to_a_page_from_another_origin(
    server: TinybirdServer, headers: dict[str, str]
) -> None:
    answer = httpx.get(f"{server.url}/tokens", headers=headers, timeout=10)
    assert answer.status_code == 403
    assert "admin_token" not in answer.text
    assert not any(h.lower().startswith("access-control-") for h in answer.headers)


def test_tokens_answer_the_local_cli(server: TinybirdServer) -> None:
    answer = httpx.get(f"{server.url}/tokens", timeout=10)
    assert answer.status_code == 200 and answer.json()["admin_token"] == server.token
    same_origin = httpx.get(f"{server.url}/tokens", headers={"Origin": server.url}, timeout=10)
    assert same_origin.status_code == 200
    assert not any(h.lower().startswith("access-control-") for h in answer.headers)


def test_no_token_in_any_log_line(server: TinybirdServer) -> None:
    token = admin_token(server)
    reader = _make_token(server, "log-reader", "PIPES:READ:list_audit_log")
    base = server.url
    for secret in (token, reader):
        httpx.get(f"{base}/v0/pipes/list_audit_log.json", params={"token": secret, "since": "x"})  # 400
        httpx.get(f"{base}/v0/pipes/nope.json", params={"token": secret})  # 404
        httpx.get(f"{base}/v0/sql", params={"token": secret, "q": "SELECT * FROM system.tables"})  # 403
        httpx.get(f"{base}/no/such/route", params={"token": secret})  # Tornado's own 404
        httpx.get(
            f"{base}/v0/sql", params={"token": secret, "q": "SELECT 1"}, headers={"Host": "evil.example"}
        )
        httpx.post(f"{base}/v0/events", params={"token": secret, "name": "nope"}, content=b"{}")
    httpx.get(f"{base}/v0/sql", params={"token": "p.wrong-but-secret", "q": "SELECT 1"})
    assert server.log is not None
    log = server.log.read_text()
    assert "/v0/pipes/list_audit_log.json" in log  # the access log is there, and redacted
    assert token not in log and reader not in log and "p.wrong-but-secret" not in log
