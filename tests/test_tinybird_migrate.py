"""``auditbird tinybird migrate``: an OpenStatus workspace (the seed's ``audit_log__v0``, loaded from
OpenStatus's own datafiles) copied into auditbird's datasource on another local server.

The source is seeded once per module and only read; every test copies into its own workspace
of the destination, so tests never see each other's events.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditbird import AuditLog
from auditbird.tinybird.migrate import migrate_urls
from auditbird.tinybird.migrate_state import MigrationState

pytestmark = pytest.mark.timeout(300)

SEED_DATAFILES = Path(__file__).parent / "data" / "openstatus-tinybird"
SRC = str(Path(__file__).resolve().parents[1] / "src")
T0 = 1_700_000_000_000
ACTIONS = ["monitor.down", "monitor.recovered", "incident.create"]


def _line(
    id: str, action: str, ts: int, metadata: Any, *, actor: str | None = None, targets: Any = None
) -> str:
    """A row as the seed's client sends it: JSON columns stringified, no uid, no workspace."""
    row: dict[str, Any] = {
        "id": id,
        "action": action,
        "timestamp": ts,
        "version": 1,
        "actor": actor if actor is not None else json.dumps({"id": "server", "type": "system"}),
        "metadata": json.dumps(metadata),
    }
    if targets is not None:
        row["targets"] = json.dumps(targets)
    return json.dumps(row)


def _dataset() -> tuple[list[str], list[str]]:
    """(good lines, bad lines): events, exact copies, and a tie group bigger than a page."""
    good = []
    for i in range(1200):
        targets = [{"id": str(i % 9), "type": "monitor"}] if i % 2 else None
        good.append(_line(f"monitor:{i % 9}", ACTIONS[i % 3], T0 + i // 4, {"i": i}, targets=targets))
    good += [good[10], good[11], good[500]]  # copies of rows: one event each
    # 40 rows sharing (timestamp, id, action), more than a page of 25: one page takes them all.
    good += [_line("monitor:tie", "monitor.down", T0 + 100, {"tie": k}) for k in range(40)]
    bad = [
        _line("monitor:1", "ping", T0 + 7, {}),  # not resource.verb
        _line("monitor:1", "monitor.down", T0 + 8, {}, actor="nope"),  # actor is not JSON
        _line("", "monitor.down", T0 + 9, {}),  # a blank stream id
    ]
    return good, bad


def _content(actor: Any, targets: Any, metadata: Any, **kw: Any) -> str:
    return json.dumps({**kw, "actor": actor, "targets": targets or [], "metadata": metadata}, sort_keys=True)


def _event_content(event: Any) -> str:
    data = event.to_dict()
    return _content(
        data["actor"],
        data["targets"],
        data["metadata"],
        id=event.id,
        action=event.action,
        timestamp=event.timestamp,
    )


def expected_events(lines: list[str]) -> set[str]:
    out = set()
    for line in lines:
        r = json.loads(line)
        # auditbird's actor has a name, "system" unless given (the seed's client sends id and type)
        actor, metadata = {"name": "system", **json.loads(r["actor"])}, json.loads(r["metadata"])
        targets = json.loads(r["targets"]) if "targets" in r else []
        out.add(_content(actor, targets, metadata, id=r["id"], action=r["action"], timestamp=r["timestamp"]))
    return out


@pytest.fixture(scope="module")
def source(tinybird_server_factory: Any) -> Any:
    server = tinybird_server_factory(datafiles=[SEED_DATAFILES])
    good, bad = _dataset()
    body = "\n".join(good + bad) + "\n"
    answer = httpx.post(
        f"{server.url}/v0/events", params={"name": "audit_log__v0"}, headers=server.headers, content=body
    ).json()
    assert answer == {"successful_rows": len(good) + len(bad), "quarantined_rows": 0}
    server.good, server.bad = good, bad
    return server


@pytest.fixture(scope="module")
def dest(tinybird_server_factory: Any) -> Any:
    return tinybird_server_factory()


@pytest.fixture
def ws() -> str:
    return f"m{uuid.uuid4().hex[:12]}"


def from_url(server: Any) -> str:
    return f"tinybird+http://{server.token}@127.0.0.1:{server.port}"


def run_migrate(source: Any, dest: Any, ws: str, state: Path, *, wait: bool = True) -> Any:
    cmd = [sys.executable, "-m", "auditbird", "tinybird", "migrate", "--from", from_url(source)]
    cmd += ["--to", from_url(dest), "--workspace", ws, "--state", str(state), "--page-rows", "25"]
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


def physical_rows(dest: Any, ws: str) -> int:
    """Rows stored in the destination table, copies included (no FINAL, no de-duplication)."""
    q = f"SELECT count() AS n FROM audit_log WHERE workspace = '{ws}' FORMAT JSON"  # noqa: S608 - a test's own id
    answer = httpx.get(f"{dest.url}/v0/sql", params={"q": q}, headers=dest.headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["data"][0]["n"])


def destination_events(dest: Any, ws: str) -> list[Any]:
    with AuditLog(from_url(dest)) as log:
        return list(log.iter_events(workspace=ws, page_size=500))


@pytest.mark.slow
def test_migrate_survives_kill_9_copies_every_event_once_and_a_rerun_stores_nothing(
    source: Any, dest: Any, ws: str, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    good = expected_events(source.good)

    proc = run_migrate(source, dest, ws, state, wait=False)
    deadline = time.monotonic() + 120
    read = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists():
            read = MigrationState.load(state).rows_read
            if read >= 300:
                break
        time.sleep(0.01)
    assert proc.poll() is None, (
        "the migration ended before it could be killed: " + proc.stderr.read().decode()
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    total = len(source.good) + len(source.bad)
    assert 300 <= read < total

    second = run_migrate(source, dest, ws, state)
    assert second.returncode == 1, second.stderr  # the bad rows are reported
    assert "check: OK" in second.stdout, second.stdout
    events = destination_events(dest, ws)
    assert len(events) == len(good) == len({e.uid for e in events})
    got = {_event_content(e) for e in events}
    assert got == good
    assert all(uuid.UUID(e.uid).version == 5 for e in events)
    assert physical_rows(dest, ws) == len(good)  # not one row written twice, across the crash

    finished = MigrationState.load(state)
    assert finished.rows_read == total and finished.copied == len(good)
    assert [(f.row["id"], f.row["action"]) for f in finished.failed] == [
        ("monitor:1", "ping"),
        ("monitor:1", "monitor.down"),
        ("", "monitor.down"),
    ]
    reasons = " | ".join(f.reason for f in finished.failed)
    assert "resource.verb" in reasons and "actor is not JSON" in reasons and "id" in reasons
    for line in ("not copied: id='monitor:1' action='ping'", "not copied: id='' action='monitor.down'"):
        assert line in second.stdout

    third = run_migrate(source, dest, ws, state)
    assert "0 events copied by this run" in third.stdout and "check: OK" in third.stdout
    assert third.returncode == 1 and "3 rows were not copied" in third.stdout
    fresh = run_migrate(source, dest, ws, tmp_path / "fresh-state.json")  # a full rescan, no checkpoint
    assert f"0 events copied by this run, {len(good)} already there" in fresh.stdout, fresh.stdout
    assert physical_rows(dest, ws) == len(good)


def test_migrate_into_any_store_reports_counts(source: Any, tmp_path: Path) -> None:
    """The destination is any store URL; here a SQLite file (the library API, no subprocess)."""
    seen: list[tuple[int, int]] = []
    report, path = migrate_urls(
        from_url(source),
        f"sqlite:///{tmp_path / 'copy.db'}",
        state_path=tmp_path / "state.json",
        page_rows=100,
        progress=lambda done, total: seen.append((done, total)),
    )
    good = expected_events(source.good)
    total = len(source.good) + len(source.bad)
    assert report.source_rows == total and report.state.rows_read == total
    assert report.state.events == len(good) + 3 and report.failed_events == 3
    assert report.copied_now == len(good) and report.destination_events == len(good)
    assert report.counts_agree and not report.ok  # three rows could not be copied
    assert seen[0] == (0, total) and seen[-1] == (total, total) and len(seen) > 10
    assert path == tmp_path / "state.json"
    with AuditLog(f"sqlite:///{tmp_path / 'copy.db'}") as log:
        tie = log.get_audit_log("monitor:tie")
    assert sorted(e.metadata["tie"] for e in tie) == list(range(40))


def test_a_state_file_of_another_migration_is_refused(
    source: Any, dest: Any, ws: str, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    MigrationState("http://elsewhere/audit_log__v0", "tinybird+http://other/audit_log", ws).save(state)
    result = run_migrate(source, dest, ws, state)
    assert result.returncode == 2
    assert "belongs to the migration from http://elsewhere/audit_log__v0" in result.stderr
    state.write_text("{not json")
    result = run_migrate(source, dest, ws, state)
    assert result.returncode == 2 and "not a migration state file" in result.stderr
    assert physical_rows(dest, ws) == 0


def test_the_seed_datasource_is_refused_as_destination(source: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the seed's datasource"):
        migrate_urls(
            from_url(source), from_url(source) + "?datasource=audit_log__v0", state_path=tmp_path / "s.json"
        )


def test_two_runs_cannot_share_a_state_file(source: Any, dest: Any, ws: str, tmp_path: Path) -> None:
    import fcntl

    state = tmp_path / "state.json"
    with open(tmp_path / "state.json.lock", "a+b") as held:  # what a running migration holds
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        result = run_migrate(source, dest, ws, state)
    assert result.returncode == 2 and "another migration is running" in result.stderr
    assert not state.exists() and physical_rows(dest, ws) == 0


def test_the_count_check_catches_rows_added_behind_the_checkpoint(
    tinybird_server_factory: Any, tmp_path: Path
) -> None:
    """A row written to the source, during the run, before the position already done is not
    read by that run: the check says so, and a fresh pass copies just that row."""
    src = tinybird_server_factory(datafiles=[SEED_DATAFILES])

    def post(lines: list[str]) -> None:
        r = httpx.post(
            f"{src.url}/v0/events",
            params={"name": "audit_log__v0"},
            headers=src.headers,
            content="\n".join(lines),
        )
        assert r.json()["quarantined_rows"] == 0

    post([_line(f"monitor:{i}", "monitor.down", T0 + 1_000 + i, {"i": i}) for i in range(60)])
    late = _line("monitor:late", "monitor.down", T0, {"late": True})  # older than every row

    def on_page(done: int, total: int) -> None:
        if done == 20:
            post([late])

    sqlite = f"sqlite:///{tmp_path / 'copy.db'}"
    report, _ = migrate_urls(
        from_url(src), sqlite, state_path=tmp_path / "a.json", page_rows=20, progress=on_page
    )
    assert (report.source_rows, report.state.rows_read, report.destination_events) == (61, 60, 60)
    assert not report.counts_agree and not report.ok
    assert "MISMATCH" in "\n".join(report.summary()) and "new --state" in "\n".join(report.summary())

    again, _ = migrate_urls(from_url(src), sqlite, state_path=tmp_path / "b.json", page_rows=20)
    assert (again.copied_now, again.present_now, again.destination_events) == (1, 60, 61)
    assert again.ok
