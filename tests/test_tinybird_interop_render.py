"""Tinybird's own template engine agrees with the local server on every shipped pipe.

``render_sql_template`` from Tinybird's ``tinybird`` package (run in its venv as a subprocess, so
nothing of it is imported here) renders each shipped pipe over a table of parameter sets; the rows
that SQL returns through ``/v0/sql`` must equal what the local server's pipe endpoint returns for
the same parameters, in the same order.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditbird.tinybird.datafiles import SHIPPED, load_dir
from tests.plugins.tinybird_server import TinybirdServer
from tests.test_tinybird_local import T0, ndjson, row

# Not slow (~20 s): Tinybird's own CLIs and renderer run in the default `make test` (issue 9).

# Reads JSON {"nodes": [[name, sql], ...], "cases": [params, ...]} on stdin; writes the SQL of each
# case, the earlier nodes as CTEs of the last, as Tinybird composes a pipe.
RENDER = """
import json, sys
from tinybird.sql_template import render_sql_template

job = json.load(sys.stdin)

def strip(sql):
    lines = sql.strip().splitlines()
    return "\\n".join(lines[1:]) if lines and lines[0].strip() == "%" else sql

out = []
for params in job["cases"]:
    try:
        rendered = [(name, render_sql_template(strip(sql), dict(params))[0]) for name, sql in job["nodes"]]
    except Exception as exc:
        out.append({"error": f"{type(exc).__name__}: {exc}"})
        continue
    *earlier, (_, last) = rendered
    ctes = ", ".join(f"`{name}` AS ({sql})" for name, sql in earlier)
    out.append({"sql": (f"WITH {ctes}\\n" if ctes else "") + last})
json.dump(out, sys.stdout)
"""


def cases(ws: str) -> dict[str, list[dict[str, str]]]:
    after = str(T0 + 5000)
    return {
        "list_audit_log": [
            {"workspace": ws},
            {"workspace": ws, "order": "asc"},
            {"workspace": ws, "limit": "3"},
            {"workspace": ws, "event_id": "monitor:1"},
            {"workspace": ws, "actions": "monitor.down"},
            {"workspace": ws, "actions": "monitor.down,monitor.up"},
            {"workspace": ws, "actor_id": "user1"},
            {"workspace": ws, "target_type": "monitor"},
            {"workspace": ws, "target_id": "2"},
            {"workspace": ws, "target_type": "monitor", "target_id": "2"},
            {"workspace": ws, "since": str(T0 + 3000)},
            {"workspace": ws, "until": str(T0 + 3000)},
            {"workspace": ws, "since": str(T0 + 2000), "until": str(T0 + 7000), "limit": "2"},
            {"workspace": ws, "text": "GRU"},
            {"workspace": ws, "uid": "u0004"},
            {"workspace": ws, "after_ts": after, "after_uid": "u0005"},
            {"workspace": ws, "after_ts": after, "after_uid": "u0005", "order": "asc", "limit": "2"},
            {"workspace": ws, "limit": "0"},
        ],
        "endpoint_audit_log": [
            {"workspace": ws, "event_id": "monitor:1"},
            {"workspace": ws, "event_id": "monitor:2", "limit": "2"},
            {"workspace": ws, "event_id": "monitor:nothing"},
        ],
        # The tree published beside the events (auditbird.provable.tinybird_tree).
        "audit_tree_leaves": [{"ws": ws}, {"ws": ws, "start": "3", "limit": "2"}],
        "audit_checkpoints_latest": [{"ws": ws}, {"ws": ws, "limit": "5"}],
    }


@pytest.fixture(scope="module")
def loaded(tinybird_server: TinybirdServer) -> str:
    ws = f"render-{uuid.uuid4().hex[:10]}"
    rows = [row(ws, n) for n in range(1, 10)] + [row(ws, 4)]  # u0004 twice: returned once
    resp = httpx.post(
        f"{tinybird_server.url}/v0/events",
        params={"name": "audit_log", "wait": "true"},
        content=ndjson(rows),
        headers=tinybird_server.headers,
    )
    assert resp.json() == {"successful_rows": 10, "quarantined_rows": 0}
    return ws


def render(python: Path, nodes: list[tuple[str, str]], params: list[dict[str, str]]) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(python), "-c", RENDER],
        input=json.dumps({"nodes": nodes, "cases": params}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rendered: list[dict[str, Any]] = json.loads(out.stdout)
    return rendered


def test_every_shipped_pipe_renders_under_tinybird_to_the_rows_the_server_returns(
    tb_cli_python: Path, tinybird_server: TinybirdServer, loaded: str
) -> None:
    _, pipes = load_dir(SHIPPED)
    table = cases(loaded)
    assert set(table) == set(pipes), "every shipped pipe needs parameter sets here"
    compared = 0
    for name, params in table.items():
        nodes = [(n.name, n.sql) for n in pipes[name].nodes]
        for case, rendered in zip(params, render(tb_cli_python, nodes, params), strict=True):
            assert "sql" in rendered, (name, case, rendered)
            via_sql = httpx.get(
                f"{tinybird_server.url}/v0/sql",
                params={"q": rendered["sql"] + "\nFORMAT JSON"},
                headers=tinybird_server.headers,
                timeout=30,
            )
            assert via_sql.status_code == 200, (name, case, rendered["sql"], via_sql.text)
            via_pipe = httpx.get(
                f"{tinybird_server.url}/v0/pipes/{name}.json",
                params=case,
                headers=tinybird_server.headers,
                timeout=30,
            )
            assert via_pipe.status_code == 200, (name, case, via_pipe.text)
            assert via_sql.json()["data"] == via_pipe.json()["data"], (name, case, rendered["sql"])
            compared += 1
    assert compared == sum(len(p) for p in table.values())


def test_tinybird_refuses_what_the_server_refuses(
    tb_cli_python: Path, tinybird_server: TinybirdServer
) -> None:
    """A required parameter left out: Tinybird's renderer and the server both refuse it."""
    _, pipes = load_dir(SHIPPED)
    nodes = [(n.name, n.sql) for n in pipes["endpoint_audit_log"].nodes]
    [rendered] = render(tb_cli_python, nodes, [{"workspace": "x"}])
    assert "error" in rendered and "event_id" in rendered["error"]
    resp = httpx.get(
        f"{tinybird_server.url}/v0/pipes/endpoint_audit_log.json",
        params={"workspace": "x"},
        headers=tinybird_server.headers,
    )
    assert resp.status_code == 400 and "event_id" in resp.json()["error"]
