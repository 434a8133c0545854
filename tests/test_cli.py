"""The `auditbird` command, run as a real process."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXE = shutil.which("auditbird", path=str(Path(sys.executable).parent)) or "auditbird"
SEED = json.dumps(
    {
        "id": "monitor:1",
        "action": "monitor.down",
        "targets": [{"id": "1", "type": "monitor"}],
        "metadata": {"region": "gru", "statusCode": 400, "message": "timeout"},
    }
)


@pytest.fixture
def cli(tmp_path: Path):
    env = {
        **os.environ,
        "AUDITBIRD_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "AUDITBIRD_ACTIONS": "auditbird.catalog.openstatus",
        "COLUMNS": "200",
    }

    def run(*args: str, stdin: str | None = None, code: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [EXE, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path
        )
        assert result.returncode == code, (result.stdout, result.stderr)
        return result

    return run


def test_publish_then_log_shows_the_history(cli) -> None:
    out = cli("publish", SEED).stdout
    stored = json.loads(out)
    assert stored["actor"] == {"id": "", "name": "system"} and stored["uid"]
    cli(
        "publish",
        json.dumps(
            {
                "id": "monitor:1",
                "action": "monitor.recovered",
                "metadata": {"region": "gru", "statusCode": 200},
            }
        ),
    )
    rows = json.loads(cli("log", "monitor:1", "--format", "json").stdout)
    assert [r["action"] for r in rows] == ["monitor.recovered", "monitor.down"]
    table = cli("log", "monitor:1").stdout
    assert "monitor.down" in table and "monitor:1" in table


def test_bad_input_exits_2_with_one_line_per_problem(cli) -> None:
    result = cli(
        "publish",
        '{"id": "", "action": "monitor.down", "metadata": {"region": "gru", "statusCode": "abc"}}',
        code=2,
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any(line.startswith("error: id:") for line in lines)
    assert any(line.startswith("error: metadata.statusCode:") for line in lines)
    assert cli("query", "--format", "ndjson").stdout == ""
    assert cli("publish", "{not json", code=2).stderr.startswith("error: argument: not valid JSON")
    assert "limit" in cli("query", "--limit", "0", code=2).stderr
    assert "since" in cli("query", "--since", "soon", code=2).stderr
    assert "--actions nope.module" in cli("--actions", "nope.module", "actions", code=2).stderr


def test_ndjson_on_stdin_publishes_in_batches(cli) -> None:
    lines = "\n".join(
        json.dumps(
            {
                "id": f"monitor:{i % 7}",
                "action": "monitor.down",
                "metadata": {"region": "ams", "statusCode": 500},
            }
        )
        for i in range(2500)
    )
    result = cli("publish", stdin=lines + "\n")
    assert "published 2500 event(s)" in result.stderr
    out = cli("query", "--all", "--limit", "1000", "--format", "ndjson").stdout
    assert len(out.splitlines()) == 2500


def test_a_bad_ndjson_line_names_its_line_and_stores_nothing_of_its_batch(cli) -> None:
    good = json.dumps({"id": "m:1", "action": "a.b"})
    result = cli("publish", stdin=f"{good}\n{good}\n" + '{"id": "m:1", "action": "nope"}\n', code=2)
    assert "error: line 3: action:" in result.stderr
    assert cli("query", "--format", "ndjson").stdout == ""


def test_query_filters_formats_and_cursor(cli) -> None:
    events = [
        {
            "id": f"monitor:{i}",
            "action": "monitor.down" if i % 2 else "monitor.recovered",
            "actor": {"id": f"u{i % 2}", "name": "n"},
            "targets": [{"id": str(i), "type": "monitor"}],
            "timestamp": 1_700_000_000_000 + i,
            "metadata": {"region": "=cmd|' /C calc'!A0", "statusCode": 500},
        }
        for i in range(6)
    ]
    cli("publish", json.dumps(events))
    down = json.loads(cli("query", "--action", "monitor.down", "--format", "json").stdout)
    assert sorted(e["id"] for e in down) == ["monitor:1", "monitor:3", "monitor:5"]
    both = cli("query", "-a", "monitor.down", "-a", "monitor.recovered", "--format", "ndjson").stdout
    assert len(both.splitlines()) == 6
    assert len(cli("query", "--actor", "u0", "--format", "ndjson").stdout.splitlines()) == 3
    one = json.loads(cli("query", "--target-type", "monitor", "--target-id", "4", "--format", "json").stdout)
    assert [e["id"] for e in one] == ["monitor:4"]
    since = cli(
        "query", "--since", "1700000000003", "--until", "2023-11-14T22:13:20.005Z", "--format", "ndjson"
    )
    assert [json.loads(x)["id"] for x in since.stdout.splitlines()] == ["monitor:4", "monitor:3"]
    page = cli("query", "--limit", "4", "--format", "ndjson")
    assert len(page.stdout.splitlines()) == 4
    cursor = page.stderr.split("next_cursor: ")[1].strip()
    rest = cli("query", "--limit", "4", "--cursor", cursor, "--format", "ndjson").stdout.splitlines()
    assert [json.loads(x)["id"] for x in rest] == ["monitor:1", "monitor:0"]
    rows = list(csv.DictReader(io.StringIO(cli("query", "--format", "csv").stdout)))
    assert len(rows) == 6 and rows[0]["id"] == "monitor:5" and rows[0]["action"] == "monitor.down"
    assert json.loads(rows[0]["metadata"])["region"].startswith("=cmd")  # machine output: exact


def test_actions_prints_json_schema_of_registered_actions(cli) -> None:
    schemas = json.loads(cli("actions").stdout)
    down = schemas["monitor.down"]["1"]
    assert down["properties"]["statusCode"]["type"] == "integer"
    assert set(down["required"]) == {"region", "statusCode"}
    assert {"monitor.failed", "notification.sent", "incident.resolved"} <= set(schemas)


def test_store_option_overrides_the_environment(cli, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    cli("--store", f"sqlite:///{other}", "publish", SEED)
    assert other.exists()
    assert cli("query", "--format", "ndjson").stdout == ""
    assert len(cli("--store", f"sqlite:///{other}", "query", "--format", "ndjson").stdout.splitlines()) == 1
