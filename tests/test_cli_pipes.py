"""CLI output fit for pipes and scripts: whole cells, one line per row, `-` for stdin, examples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from .live_server import EXE

ROOT = Path(__file__).resolve().parent.parent
LONG_ACTOR = "a-rather-long-actor-name-that-would-not-fit-in-a-narrow-column"


def run(cwd: Path, *args: str, stdin: str | None = None, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AUDITBIRD_URL": f"sqlite:///{cwd / 'pipes.db'}",
        "AUDITBIRD_ACTIONS": "auditbird.catalog.openstatus",
        "COLUMNS": "40",  # a narrow terminal: nothing piped may depend on it
    }
    result = subprocess.run(
        [EXE, *args], input=stdin, cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == code, (result.stdout, result.stderr)
    return result


def _events() -> str:
    lines = [
        {"id": "monitor:1", "action": "monitor.down", "metadata": {"region": "gru", "statusCode": 400}},
        {
            "id": "monitor:1",
            "action": "monitor.recovered",
            "actor": {"id": "u1", "name": LONG_ACTOR},
            "metadata": {"region": "gru", "statusCode": 200, "message": "fine\tagain\nnow"},
        },
    ]
    return "".join(json.dumps(line) + "\n" for line in lines)


def test_publish_dash_reads_ndjson_from_stdin(tmp_path: Path) -> None:
    result = run(tmp_path, "publish", "-", stdin=_events())
    assert "published 2 event(s)" in result.stderr
    rows = json.loads(run(tmp_path, "log", "monitor:1", "--format", "json").stdout)
    assert [r["action"] for r in rows] == ["monitor.recovered", "monitor.down"]


def test_a_piped_table_keeps_every_cell_whole_on_one_line(tmp_path: Path) -> None:
    run(tmp_path, "publish", "-", stdin=_events())
    out = run(tmp_path, "log", "monitor:1").stdout
    lines = out.splitlines()
    assert lines[0].split("\t") == ["time (UTC)", "id", "action", "actor", "targets", "metadata"]
    assert len(lines) == 3, out
    recovered = [line for line in lines if "monitor.recovered" in line]
    assert len(recovered) == 1
    cells = recovered[0].split("\t")
    assert cells[2] == "monitor.recovered"
    assert cells[3] == f"{LONG_ACTOR} (u1)"
    # Tabs and newlines inside a cell cannot break the row.
    assert json.loads(cells[5])["message"] == "fine\tagain\nnow"
    assert len(cells) == 6


def test_the_cursor_is_printed_on_one_line(tmp_path: Path) -> None:
    run(tmp_path, "publish", "-", stdin=_events())
    result = run(tmp_path, "query", "--limit", "1")
    cursor_lines = [line for line in result.stderr.splitlines() if line.startswith("next_cursor:")]
    assert len(cursor_lines) == 1, result.stderr
    cursor = cursor_lines[0].split(": ", 1)[1]
    second = run(tmp_path, "query", "--limit", "1", "--cursor", cursor, "--format", "ndjson").stdout
    assert json.loads(second)["action"] == "monitor.down"


def test_keys_list_piped_is_tab_separated(tmp_path: Path) -> None:
    run(tmp_path, "keys", "create", "--workspace", "acme", "--scope", "read", "--name", LONG_ACTOR)
    out = run(tmp_path, "keys", "list").stdout.splitlines()
    assert out[0].split("\t")[:3] == ["id", "workspace", "scope"]
    assert out[1].split("\t")[1:4] == ["acme", "read", LONG_ACTOR]


def _commands() -> list[tuple[str, ...]]:
    from auditbird.cli import app

    root = typer.main.get_command(app)
    found: list[tuple[str, ...]] = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        if hasattr(cmd, "commands"):  # a group (typer ships its own click)
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))
        else:
            found.append(path)

    walk(root, ())
    return found


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_every_command_help_shows_an_example(tmp_path: Path, command: tuple[str, ...]) -> None:
    out = run(tmp_path, *command, "--help").stdout
    assert "Example: auditbird" in out, out


def test_bench_help_does_not_crash() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "bench.core_sqlite" in result.stdout
