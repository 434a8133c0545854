"""The local server answers as Tinybird does: the faults issue #9 found, each kept as a test.

Events API errors as JSON, gzip whatever the Content-Type, JSON-array bodies, NDJSON split only at
newlines; the Pipes API's POST, formats, ``q=`` and 64-bit quoting; the Query API's pipes by name,
``pipeline=`` and refused system tables; every route answering JSON.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import uuid
from typing import Any

import httpx
import pytest

from tests.plugins.tinybird_server import TinybirdServer
from tests.test_tinybird_local import T0, ingest, ndjson, pipe, post_events, row, sql, uids

JSON = "application/json"


def is_json(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith(JSON), (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    return body


# -- Events API ---------------------------------------------------------------------------


def test_every_events_error_is_a_json_body(tinybird_server: TinybirdServer) -> None:
    url = tinybird_server.url
    missing_name = httpx.post(f"{url}/v0/events", content=b"{}", headers=tinybird_server.headers)
    assert missing_name.status_code == 400 and "name" in is_json(missing_name)["error"]
    no_token = httpx.post(f"{url}/v0/events", params={"name": "audit_log"}, content=b"{}")
    assert no_token.status_code == 403 and "token" in is_json(no_token)["error"].lower()
    unknown = post_events(tinybird_server, b"{}", name="no_such_ds")
    assert unknown.status_code == 404 and "no_such_ds" in is_json(unknown)["error"]
    too_big = post_events(tinybird_server, b" " * (10 * 1024 * 1024 + 1))
    assert too_big.status_code == 413 and "10485760" in is_json(too_big)["error"]
    not_gzip = httpx.post(
        f"{url}/v0/events",
        params={"name": "audit_log"},
        content=b"plain",
        headers={**tinybird_server.headers, "Content-Encoding": "gzip"},
    )
    assert not_gzip.status_code == 400 and "gzip" in is_json(not_gzip)["error"]


def test_429_is_json_with_the_documented_rate_limit_headers(
    tinybird_server_factory: Any,
) -> None:
    server = tinybird_server_factory(throttle=1, retry_after=3)
    first = post_events(server, b"")
    assert first.status_code == 200
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(first.headers)
    answers = [post_events(server, b"") for _ in range(8)]  # 1 per second: some share a second
    limited = [r for r in answers if r.status_code == 429]
    assert limited, [r.status_code for r in answers]
    assert "too many" in is_json(limited[0])["error"].lower()
    assert limited[0].headers["x-ratelimit-remaining"] == "0"
    assert int(limited[0].headers["retry-after"]) >= 1


def test_gzip_is_read_whatever_the_content_type(tinybird_server: TinybirdServer, ws: str) -> None:
    """curl --data-binary @body.gz -H 'Content-Encoding: gzip' sends a form content type."""
    for n, content_type in enumerate(["application/x-www-form-urlencoded", "text/plain", None], start=1):
        headers = {**tinybird_server.headers, "Content-Encoding": "gzip"}
        if content_type:
            headers["Content-Type"] = content_type
        body = gzip.compress(ndjson([row(ws, n)]))
        resp = httpx.post(
            f"{tinybird_server.url}/v0/events",
            params={"name": "audit_log", "wait": "true"},
            content=body,
            headers=headers,
        )
        assert resp.status_code == 200, (content_type, resp.text)
        assert is_json(resp) == {"successful_rows": 1, "quarantined_rows": 0}
    assert uids(pipe(tinybird_server, "list_audit_log", ws=ws, order="asc")) == [
        "u0001",
        "u0002",
        "u0003",
    ]


def test_gzip_with_form_content_type_through_curl(
    tinybird_server: TinybirdServer, ws: str, tmp_path: Any
) -> None:
    body = tmp_path / "body.gz"
    body.write_bytes(gzip.compress(ndjson([row(ws, 7)])))
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-H",
            f"Authorization: Bearer {tinybird_server.token}",
            "-H",
            "Content-Encoding: gzip",
            "--data-binary",
            f"@{body}",
            f"{tinybird_server.url}/v0/events?name=audit_log&wait=true",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert json.loads(out.stdout) == {"successful_rows": 1, "quarantined_rows": 0}


def test_a_json_array_body_is_one_row_per_element(tinybird_server: TinybirdServer, ws: str) -> None:
    body = json.dumps([row(ws, 1), row(ws, 2), "not an object"]).encode()
    resp = post_events(tinybird_server, body)
    assert resp.status_code == 200
    assert is_json(resp) == {"successful_rows": 2, "quarantined_rows": 1}
    assert uids(pipe(tinybird_server, "list_audit_log", ws=ws, order="asc")) == ["u0001", "u0002"]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\r"])
def test_ndjson_is_split_only_at_newlines(tinybird_server: TinybirdServer, ws: str, separator: str) -> None:
    """A raw U+2028 (and the other characters str.splitlines() splits at) is part of a value."""
    meta = json.dumps({"note": f"before{separator}after"}, ensure_ascii=False)
    rows = [row(ws, 1, metadata=meta), row(ws, 2)]
    body = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode("utf-8")
    resp = post_events(tinybird_server, body)
    assert is_json(resp) == {"successful_rows": 2, "quarantined_rows": 0}, resp.text
    found = pipe(tinybird_server, "list_audit_log", ws=ws, order="asc").json()["data"]
    assert [r["uid"] for r in found] == ["u0001", "u0002"]
    assert json.loads(found[0]["metadata"]) == {"note": f"before{separator}after"}


def test_crlf_ndjson_is_read(tinybird_server: TinybirdServer, ws: str) -> None:
    body = b"\r\n".join(json.dumps(r).encode() for r in [row(ws, 1), row(ws, 2)]) + b"\r\n"
    assert is_json(post_events(tinybird_server, body)) == {"successful_rows": 2, "quarantined_rows": 0}


def test_quarantine_reasons_are_given(tinybird_server: TinybirdServer, ws: str) -> None:
    bad = row(ws, 1, version="one")
    resp = post_events(tinybird_server, ndjson([bad]))
    assert is_json(resp) == {"successful_rows": 0, "quarantined_rows": 1}
    found = sql(
        tinybird_server,
        "%\nSELECT c__error FROM audit_log_quarantine WHERE position(c__line, {{String(w)}}) > 0 FORMAT JSON",
        w=ws,
    ).json()["data"]
    assert "version" in found[0]["c__error"][0]


# -- Pipes API ----------------------------------------------------------------------------


@pytest.fixture
def three(tinybird_server: TinybirdServer, ws: str) -> str:
    assert ingest(tinybird_server, [row(ws, n) for n in (1, 2, 3)]).status_code == 200
    return ws


def test_pipe_answers_post_as_get(tinybird_server: TinybirdServer, three: str) -> None:
    url = f"{tinybird_server.url}/v0/pipes/list_audit_log.json"
    as_form = httpx.post(url, data={"ws": three, "order": "asc"}, headers=tinybird_server.headers)
    assert as_form.status_code == 200, as_form.text
    as_json = httpx.post(url, json={"ws": three, "order": "asc"}, headers=tinybird_server.headers)
    assert uids(as_form) == uids(as_json) == ["u0001", "u0002", "u0003"]


@pytest.mark.parametrize("extension", ["csv", "ndjson", "parquet"])
def test_pipe_formats(tinybird_server: TinybirdServer, three: str, extension: str) -> None:
    resp = httpx.get(
        f"{tinybird_server.url}/v0/pipes/list_audit_log.{extension}",
        params={"ws": three, "order": "asc"},
        headers=tinybird_server.headers,
    )
    assert resp.status_code == 200, resp.text
    if extension == "csv":
        lines = resp.text.splitlines()
        assert lines[0].startswith('"uid"') and len(lines) == 4
    elif extension == "ndjson":
        assert [json.loads(line)["uid"] for line in resp.text.splitlines()] == ["u0001", "u0002", "u0003"]
    else:
        pq = pytest.importorskip("pyarrow.parquet")
        table = pq.read_table(io.BytesIO(resp.content))
        assert [u if isinstance(u, str) else u.decode() for u in table.column("uid").to_pylist()] == [
            "u0001",
            "u0002",
            "u0003",
        ]


def test_q_runs_over_the_pipe_result(tinybird_server: TinybirdServer, three: str) -> None:
    resp = pipe(tinybird_server, "list_audit_log", ws=three, q="SELECT count() AS n, max(uid) AS top FROM _")
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"] == [{"n": 3, "top": "u0003"}]
    outside = pipe(tinybird_server, "list_audit_log", ws=three, q="SELECT name FROM system.tables")
    assert outside.status_code == 403 and "system.tables" in outside.json()["error"]


def test_quote_64bit_integers(tinybird_server: TinybirdServer, three: str) -> None:
    plain = pipe(tinybird_server, "list_audit_log", ws=three, order="asc").json()["data"]
    assert plain[0]["timestamp"] == T0 + 1000
    quoted = pipe(
        tinybird_server,
        "list_audit_log",
        ws=three,
        order="asc",
        output_format_json_quote_64bit_integers="1",
    ).json()["data"]
    assert quoted[0]["timestamp"] == str(T0 + 1000)


def test_pipe_errors_are_json_and_unknown_routes_too(tinybird_server: TinybirdServer) -> None:
    unknown = httpx.get(f"{tinybird_server.url}/v0/nothing/here", headers=tinybird_server.headers)
    assert unknown.status_code == 404 and "/v0/nothing/here" in is_json(unknown)["error"]
    wrong_method = httpx.delete(
        f"{tinybird_server.url}/v0/events?name=audit_log", headers=tinybird_server.headers
    )
    assert wrong_method.status_code == 405 and "DELETE" in is_json(wrong_method)["error"]


def test_listings_have_the_fields_the_clis_read(tinybird_server: TinybirdServer) -> None:
    datasources = is_json(httpx.get(f"{tinybird_server.url}/v0/datasources", headers=tinybird_server.headers))
    ds = next(d for d in datasources["datasources"] if d["name"] == "audit_log")
    assert {"id", "name", "created_at", "updated_at", "columns", "engine", "type"} <= set(ds)
    pipes = is_json(httpx.get(f"{tinybird_server.url}/v0/pipes", headers=tinybird_server.headers))
    listed = next(p for p in pipes["pipes"] if p["name"] == "list_audit_log")
    assert {"id", "name", "created_at", "updated_at", "nodes", "type", "endpoint"} <= set(listed)
    assert listed["type"] == "endpoint"


# -- Query API ----------------------------------------------------------------------------


def test_sql_reads_a_pipe_by_name_with_its_parameters(tinybird_server: TinybirdServer, three: str) -> None:
    resp = sql(tinybird_server, "SELECT uid FROM list_audit_log ORDER BY uid FORMAT JSON", ws=three)
    assert resp.status_code == 200, resp.text
    assert [r["uid"] for r in resp.json()["data"]] == ["u0001", "u0002", "u0003"]


def test_sql_pipeline_is_read_as_underscore(tinybird_server: TinybirdServer, three: str) -> None:
    resp = sql(tinybird_server, "SELECT count() AS n FROM _ FORMAT JSON", pipeline="list_audit_log", ws=three)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"] == [{"n": 3}]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM system.tables",
        "SELECT name FROM system.databases",
        "SELECT * FROM information_schema.tables",
        "SELECT uid FROM audit_log WHERE uid IN (SELECT name FROM system.users)",
    ],
)
def test_sql_refuses_system_tables(tinybird_server: TinybirdServer, query: str) -> None:
    resp = sql(tinybird_server, query)
    assert resp.status_code == 403, resp.text
    assert "not found" in is_json(resp)["error"].lower() or "not allowed" in is_json(resp)["error"].lower()


@pytest.fixture
def ws() -> str:
    return f"ws-{uuid.uuid4().hex[:12]}"
