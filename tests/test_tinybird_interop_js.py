"""JavaScript clients nobody here wrote, against the local server: the seed's ``@chronark/zod-bird``
and Tinybird's ``@tinybirdco/sdk`` (installed by scripts/test-deps.d/25-node-clients.sh), and
events crossing between them and auditbird's Python store in both directions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from auditbird import AuditLog, Tinybird
from tests.plugins.tinybird_server import TinybirdServer

INTEROP = Path(__file__).resolve().parent / "interop"
SEED = {
    "id": "monitor:1",
    "action": "monitor.down",
    "targets": [{"id": "1", "type": "monitor"}],
    "metadata": {"region": "gru", "statusCode": 400, "message": "timeout"},
}


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.skip("node is not installed")
    if not (INTEROP / "node_modules" / "@chronark" / "zod-bird").is_dir():
        pytest.skip(
            "run `sh scripts/test-deps.d/25-node-clients.sh` (make test does) to install the JS clients"
        )
    return found


def run_js(node: str, script: str, server: TinybirdServer, **args: Any) -> Any:
    payload = json.dumps({"baseUrl": server.url, "token": server.token, **args})
    out = subprocess.run(
        [node, str(INTEROP / script), payload],
        cwd=INTEROP,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, f"{script} failed:\n{out.stdout}\n{out.stderr}"
    return json.loads(out.stdout)


@pytest.fixture
def ws() -> str:
    return f"js-{uuid.uuid4().hex[:12]}"


def test_zod_bird_publishes_the_seed_example_and_reads_it_back(
    node: str, tinybird_server: TinybirdServer, ws: str
) -> None:
    event = {**SEED, "uid": str(uuid.uuid4()), "workspace": ws}
    published = run_js(
        node, "zod_bird.mjs", tinybird_server, op="publish", datasource="audit_log", events=[event]
    )
    assert published == {"ok": {"successful_rows": 1, "quarantined_rows": 0}}
    read = run_js(
        node,
        "zod_bird.mjs",
        tinybird_server,
        op="read",
        pipe="endpoint_audit_log",
        params={"event_id": "monitor:1", "ws": ws},
    )
    [row] = read["data"]
    assert row["uid"] == event["uid"] and row["action"] == "monitor.down"
    assert row["actor"] == {"id": "", "name": "system"}  # the seed's default actor
    assert row["targets"] == SEED["targets"] and row["metadata"] == SEED["metadata"]
    assert row["version"] == 1 and isinstance(row["timestamp"], int)


def test_zod_bird_sees_the_servers_json_errors(node: str, tinybird_server: TinybirdServer) -> None:
    """Once zod-bird said `Unexpected token 'D', "Data Sourc"... is not valid JSON`."""
    event = {**SEED, "uid": "u1"}
    failed = run_js(
        node, "zod_bird.mjs", tinybird_server, op="error", datasource="no_such_ds", events=[event]
    )
    assert "no_such_ds" in failed["error"] and "not valid JSON" not in failed["error"]


def test_sdk_ingests_queries_and_runs_sql(node: str, tinybird_server: TinybirdServer, ws: str) -> None:
    rows = [
        {
            "uid": f"u{n}",
            "workspace": ws,
            "id": "monitor:7",
            "action": "monitor.up",
            "actor": json.dumps({"id": "a", "name": "b"}),
            "targets": "[]",
            "metadata": json.dumps({"n": n, "note": "line\u2028separator"}, ensure_ascii=False),
            "timestamp": 1_700_000_000_000 + n,
            "version": 1,
        }
        for n in range(3)
    ]
    assert run_js(
        node, "tinybird_sdk.mjs", tinybird_server, op="ingest", datasource="audit_log", rows=rows
    ) == {
        "successful_rows": 3,
        "quarantined_rows": 0,
    }
    queried = run_js(
        node, "tinybird_sdk.mjs", tinybird_server, op="query", pipe="list_audit_log", params={"ws": ws}
    )
    assert [r["uid"] for r in queried["data"]] == ["u2", "u1", "u0"]
    assert json.loads(queried["data"][0]["metadata"])["note"] == "line\u2028separator"
    counted = run_js(
        node,
        "tinybird_sdk.mjs",
        tinybird_server,
        op="sql",
        sql=f"SELECT count() AS n FROM audit_log WHERE workspace = '{ws}' FORMAT JSON",  # noqa: S608 - a uuid
    )
    assert counted["data"] == [{"n": 3}]


def test_sdk_errors_carry_tinybirds_status_and_message(node: str, tinybird_server: TinybirdServer) -> None:
    errors = run_js(node, "tinybird_sdk.mjs", tinybird_server, op="errors", pipe="endpoint_audit_log")
    assert errors["unknown_datasource"]["status"] == 404
    assert "no_such_datasource" in errors["unknown_datasource"]["message"]
    assert errors["unknown_pipe"]["status"] == 404 and "no_such_pipe" in errors["unknown_pipe"]["message"]
    assert (
        errors["missing_parameter"]["status"] == 400 and "event_id" in errors["missing_parameter"]["message"]
    )
    assert errors["wrong_token"]["status"] == 403
    assert errors["bad_sql"]["status"] == 400 and "nope" in errors["bad_sql"]["message"]
    assert errors["system_table"]["status"] == 403
    assert all(e["name"] == "TinybirdApiError" for e in errors.values())


def test_python_publishes_and_javascript_reads(node: str, tinybird_server: TinybirdServer, ws: str) -> None:
    tb = Tinybird(token=tinybird_server.token, host=tinybird_server.url)
    with AuditLog(tb=tb, workspace=ws) as log:
        meta = {**SEED["metadata"], "message": "time\u2028out \u0085 \u2029"}
        stored = log.publish_audit_log({**SEED, "metadata": meta, "actor": {"id": "7", "name": "mxkaske"}})
    read = run_js(
        node,
        "zod_bird.mjs",
        tinybird_server,
        op="read",
        pipe="endpoint_audit_log",
        params={"event_id": "monitor:1", "ws": ws},
    )
    [row] = read["data"]
    assert row["uid"] == stored.uid and row["timestamp"] == stored.timestamp
    assert row["actor"] == {"id": "7", "name": "mxkaske"} and row["metadata"] == meta
    queried = run_js(
        node, "tinybird_sdk.mjs", tinybird_server, op="query", pipe="list_audit_log", params={"ws": ws}
    )
    assert [r["uid"] for r in queried["data"]] == [stored.uid]


def test_javascript_publishes_and_python_reads(node: str, tinybird_server: TinybirdServer, ws: str) -> None:
    events = [
        {
            **SEED,
            "uid": str(uuid.uuid4()),
            "workspace": ws,
            "timestamp": 1_700_000_000_000 + n,
            "metadata": meta,
        }
        for n, meta in enumerate(
            [SEED["metadata"], {"region": "ams\u2028fra", "statusCode": 500, "message": None}]
        )
    ]
    published = run_js(
        node, "zod_bird.mjs", tinybird_server, op="publish", datasource="audit_log", events=events
    )
    assert published == {"ok": {"successful_rows": 2, "quarantined_rows": 0}}
    tb = Tinybird(token=tinybird_server.token, host=tinybird_server.url)
    with AuditLog(tb=tb, workspace=ws) as log:
        read = log.get_audit_log(event_id="monitor:1")
    assert [e.uid for e in read] == [events[1]["uid"], events[0]["uid"]]
    as_dicts = [e.to_dict() for e in read]
    assert as_dicts[1]["metadata"] == SEED["metadata"] and as_dicts[0]["metadata"]["region"] == "ams\u2028fra"
    assert as_dicts[1]["actor"] == {"id": "", "name": "system"}
    assert as_dicts[1]["targets"] == SEED["targets"]
