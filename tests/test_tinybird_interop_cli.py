"""Tinybird's own CLIs against the local server: the current ``tb`` and the Classic one, unchanged.

Each runs as a real subprocess from its own venv (scripts/test-deps.d/20-tinybird-clis.sh), with
``--host http://127.0.0.1:<port> --token ...`` and a throwaway HOME, so nothing reaches
Tinybird's cloud and no config is shared between runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.plugins.tinybird_server import TinybirdServer
from tests.test_tinybird_local import ndjson, row

# Not slow (~20 s): Tinybird's own CLIs and renderer run in the default `make test` (issue 9).
# No telemetry to Tinybird's cloud: the tests talk to loopback only.
QUIET = {"TB_CLI_TELEMETRY_OPTOUT": "1"}

COUNT_PIPE = """DESCRIPTION >
    How many events a workspace holds.

NODE count_audit_log_0
SQL >
    %
    SELECT count() AS n FROM audit_log WHERE workspace = {{ String(workspace, '') }}

TYPE endpoint
"""

NOTES_DATASOURCE = """SCHEMA >
    `note` String `json:$.note`,
    `n` Int64 `json:$.n`

ENGINE "MergeTree"
ENGINE_SORTING_KEY "n"
"""


def run_tb(
    tb: Path, server: TinybirdServer, home: Path, *args: str, cwd: Path | None = None, classic: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TB_", "TINYBIRD"))}
    env |= {"HOME": str(home), "TB_VERSION_WARNING": "0", "NO_COLOR": "1", "PYTHONPATH": "", **QUIET}
    target = ["--host", server.url, "--token", server.token]
    command = [str(tb), *([] if classic else ["--cloud"]), *target, *args]
    return subprocess.run(
        command,
        cwd=cwd or home,
        env=env,
        input="y\n",
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def as_json(out: str) -> dict:  # type: ignore[type-arg]
    """The JSON document a command printed (after any question the CLI asked first)."""
    doc: dict = json.loads(out[out.index("{") :])  # type: ignore[type-arg]
    return doc


@pytest.fixture(scope="module")
def server(tinybird_server_factory: Callable[..., TinybirdServer]) -> TinybirdServer:
    return tinybird_server_factory()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.fixture
def ws(server: TinybirdServer) -> str:
    workspace = f"cli-{uuid.uuid4().hex[:10]}"
    resp = httpx.post(
        f"{server.url}/v0/events",
        params={"name": "audit_log", "wait": "true"},
        content=ndjson([row(workspace, n) for n in (1, 2, 3)]),
        headers=server.headers,
    )
    assert resp.json() == {"successful_rows": 3, "quarantined_rows": 0}
    return workspace


def test_current_cli_sql(tb_cli_bin: Path, server: TinybirdServer, home: Path, ws: str) -> None:
    out = ok(
        run_tb(
            tb_cli_bin,
            server,
            home,
            "--output",
            "json",
            "sql",
            f"SELECT uid FROM audit_log WHERE workspace = '{ws}' ORDER BY uid",  # noqa: S608 - ws is a uuid
        )
    )
    assert [r["uid"] for r in as_json(out)["data"]] == ["u0001", "u0002", "u0003"]


def test_current_cli_endpoint_data(tb_cli_bin: Path, server: TinybirdServer, home: Path, ws: str) -> None:
    out = ok(
        run_tb(
            tb_cli_bin,
            server,
            home,
            "endpoint",
            "data",
            "list_audit_log",
            "--format",
            "json",
            "--ws",
            ws,
            "--order",
            "asc",
        )
    )
    assert [r["uid"] for r in as_json(out)["data"]] == ["u0001", "u0002", "u0003"]


def test_current_cli_listings(tb_cli_bin: Path, server: TinybirdServer, home: Path) -> None:
    datasources = as_json(ok(run_tb(tb_cli_bin, server, home, "datasource", "ls", "--format", "json")))
    assert "audit_log" in [d["name"] for d in datasources["datasources"]]
    pipes = as_json(ok(run_tb(tb_cli_bin, server, home, "pipe", "ls", "--format", "json")))
    assert {"list_audit_log", "endpoint_audit_log"} <= {p["name"] for p in pipes["pipes"]}
    endpoints = as_json(ok(run_tb(tb_cli_bin, server, home, "--output", "json", "endpoint", "ls")))
    listed = {e["name"]: e for e in endpoints["pipes"]}
    assert listed["list_audit_log"]["url"].startswith(f"{server.url}/v0/pipes/list_audit_log.json")


def test_current_cli_datasource_append(tb_cli_bin: Path, server: TinybirdServer, home: Path) -> None:
    workspace = f"append-{uuid.uuid4().hex[:8]}"
    events = json.dumps(row(workspace, 1))
    ok(run_tb(tb_cli_bin, server, home, "datasource", "append", "audit_log", "--events", events))
    rows = home / "rows.ndjson"
    rows.write_bytes(ndjson([row(workspace, 2), row(workspace, 3)]))
    ok(run_tb(tb_cli_bin, server, home, "datasource", "append", "audit_log", "--file", str(rows)))
    found = httpx.get(
        f"{server.url}/v0/pipes/list_audit_log.json",
        params={"ws": workspace, "order": "asc"},
        headers=server.headers,
    ).json()["data"]
    assert [r["uid"] for r in found] == ["u0001", "u0002", "u0003"]


def test_current_cli_deploys_the_shipped_project_and_more(
    tb_cli_bin: Path, tinybird_server_factory: Callable[..., TinybirdServer], home: Path, tmp_path: Path
) -> None:
    server = tinybird_server_factory()
    project = tmp_path / "project"
    written = subprocess.run(
        [sys.executable, "-m", "auditbird", "tinybird", "datafiles", str(project)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert written.returncode == 0, written.stderr
    (project / "pipes" / "count_audit_log.pipe").write_text(COUNT_PIPE)
    (project / "datasources" / "notes.datasource").write_text(NOTES_DATASOURCE)
    out = ok(run_tb(tb_cli_bin, server, home, "deploy", cwd=project))
    assert "is live" in out and "count_audit_log" in out and "notes" in out
    ws = f"deploy-{uuid.uuid4().hex[:8]}"
    httpx.post(
        f"{server.url}/v0/events",
        params={"name": "audit_log", "wait": "true"},
        content=ndjson([row(ws, 1), row(ws, 2)]),
        headers=server.headers,
    )
    data = as_json(
        ok(
            run_tb(
                tb_cli_bin,
                server,
                home,
                "endpoint",
                "data",
                "count_audit_log",
                "--format",
                "json",
                "--workspace",
                ws,
            )
        )
    )
    assert data["data"] == [{"n": 2}]
    # A second deploy of the same project changes nothing; a restart keeps what was deployed.
    again = run_tb(tb_cli_bin, server, home, "deploy", cwd=project)
    assert "No changes" in again.stdout + again.stderr
    server.restart()
    listed = httpx.get(f"{server.url}/v0/pipes", headers=server.headers).json()["pipes"]
    assert "count_audit_log" in {p["name"] for p in listed}


def test_a_deploy_the_server_cannot_do_says_why(
    tb_cli_bin: Path, tinybird_server_factory: Callable[..., TinybirdServer], home: Path, tmp_path: Path
) -> None:
    server = tinybird_server_factory()
    project = tmp_path / "project"
    (project / "datasources").mkdir(parents=True)
    changed = NOTES_DATASOURCE.replace("`note` String `json:$.note`,\n", "")
    (project / "datasources" / "notes.datasource").write_text(NOTES_DATASOURCE)
    ok(run_tb(tb_cli_bin, server, home, "deploy", cwd=project))
    (project / "datasources" / "notes.datasource").write_text(changed)
    refused = run_tb(tb_cli_bin, server, home, "deploy", cwd=project)
    assert refused.returncode != 0
    assert "cannot migrate a table in place" in refused.stdout + refused.stderr


def test_classic_cli_push_and_sql(
    tb_classic_bin: Path, server: TinybirdServer, home: Path, tmp_path: Path
) -> None:
    project = tmp_path / "classic"
    (project / "pipes").mkdir(parents=True)
    (project / "datasources").mkdir()
    suffix = uuid.uuid4().hex[:6]
    (project / "pipes" / f"count_{suffix}.pipe").write_text(
        COUNT_PIPE.replace("count_audit_log_0", f"count_{suffix}_0")
    )
    (project / "datasources" / f"notes_{suffix}.datasource").write_text(NOTES_DATASOURCE)
    ok(
        run_tb(
            tb_classic_bin,
            server,
            home,
            "push",
            f"datasources/notes_{suffix}.datasource",
            cwd=project,
            classic=True,
        )
    )
    ok(run_tb(tb_classic_bin, server, home, "push", f"pipes/count_{suffix}.pipe", cwd=project, classic=True))
    rows = project / "notes.ndjson"
    rows.write_text('{"note": "hi", "n": 1}\n{"note": "there", "n": 2}\n')
    ok(
        run_tb(
            tb_classic_bin,
            server,
            home,
            "datasource",
            "append",
            f"notes_{suffix}",
            str(rows),
            cwd=project,
            classic=True,
        )
    )
    out = ok(
        run_tb(
            tb_classic_bin,
            server,
            home,
            "sql",
            f"SELECT sum(n) AS total FROM notes_{suffix}",  # noqa: S608 - a hex suffix
            "--format",
            "json",
            classic=True,
        )
    )
    assert as_json(out)["data"] == [{"total": 3}]
    pipe = httpx.get(f"{server.url}/v0/pipes/count_{suffix}.json", headers=server.headers)
    assert pipe.status_code == 200 and "n" in pipe.json()["data"][0]


def test_current_cli_finds_the_server_as_tinybird_local(
    tb_cli_bin: Path, server: TinybirdServer, home: Path, ws: str
) -> None:
    """`tb --local` finds Tinybird Local by TB_LOCAL_HOST/TB_LOCAL_PORT and takes its tokens from /tokens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TB_", "TINYBIRD"))}
    env |= {
        "HOME": str(home),
        "TB_LOCAL_HOST": "127.0.0.1",
        "TB_LOCAL_PORT": str(server.port),
        "PYTHONPATH": "",
        **QUIET,
    }
    result = subprocess.run(
        [
            str(tb_cli_bin),
            "--local",
            "--output",
            "json",
            "sql",
            f"SELECT count() AS n FROM audit_log WHERE workspace = '{ws}'",  # noqa: S608 - a uuid
        ],  # noqa: S608 - a uuid
        cwd=home,
        env=env,
        input="y\n",
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert as_json(ok(result))["data"] == [{"n": 3}]


def test_current_cli_query_over_an_endpoint(
    tb_cli_bin: Path, server: TinybirdServer, home: Path, ws: str
) -> None:
    """`tb endpoint data --query` sends q= over the pipe's result, read as `_`."""
    out = ok(
        run_tb(
            tb_cli_bin,
            server,
            home,
            "endpoint",
            "data",
            "list_audit_log",
            "--ws",
            ws,
            "--query",
            "SELECT count() AS c, max(uid) AS top FROM _",
            "--format",
            "json",
        )
    )
    assert as_json(out)["data"] == [{"c": 3, "top": "u0003"}]


def test_classic_cli_sql_with_a_pipeline(tb_classic_bin: Path, server: TinybirdServer, home: Path) -> None:
    """Classic `tb sql --pipeline` reads the pipe as `_` (its parameters take their defaults, so
    the default workspace '')."""
    stream = f"pipeline:{uuid.uuid4().hex[:8]}"
    resp = httpx.post(
        f"{server.url}/v0/events",
        params={"name": "audit_log", "wait": "true"},
        content=ndjson([row("", n, id=stream) for n in (1, 2)]),
        headers=server.headers,
    )
    assert resp.json() == {"successful_rows": 2, "quarantined_rows": 0}
    out = ok(
        run_tb(
            tb_classic_bin,
            server,
            home,
            "sql",
            f"SELECT count() AS c FROM _ WHERE id = '{stream}'",  # noqa: S608 - a uuid
            "--pipeline",
            "list_audit_log",
            "--format",
            "json",
            classic=True,
        )
    )
    assert as_json(out)["data"] == [{"c": 2}]
