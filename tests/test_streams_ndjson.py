"""NDJSON-file log streams rotated by size, and the `auditbird streams` commands."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from auditbird import AuditLog
from auditbird.streams import NdjsonFileSink, StreamRegistry

from .live_server import EXE


def cli(store: str, *args: str, workspace: str = "acme") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "--store", store, "--workspace", workspace, "streams", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def publish(store: str, n: int, workspace: str = "acme") -> list[str]:
    with AuditLog(store, workspace=workspace) as log:
        return [
            e.uid for e in log.publish_many([{"id": f"m:{i}", "action": "monitor.down"} for i in range(n)])
        ]


def read_rotated(path: Path, keep: int) -> list[dict[str, object]]:
    files = [path.with_name(f"{path.name}.{n}") for n in range(keep, 0, -1)] + [path]
    return [json.loads(line) for f in files if f.exists() for line in f.read_text().splitlines()]


def test_ndjson_stream_rotates_by_size_and_keeps_every_event_in_order(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    out = tmp_path / "out" / "audit.ndjson"
    added = cli(store, "add", "files", "--ndjson", str(out), "--max-bytes", "4096", "--keep", "50")
    assert added.returncode == 0, added.stderr
    uids = publish(store, 100)
    ran = cli(store, "run", "--batch", "10")
    assert ran.returncode == 0, ran.stderr
    rotated = sorted(out.parent.glob("audit.ndjson.*"))
    assert len(rotated) >= 3
    assert all(p.stat().st_size <= 4096 for p in [*rotated, out])
    assert [e["uid"] for e in read_rotated(out, 50)] == uids


def test_ndjson_rotation_drops_only_files_beyond_keep(tmp_path: Path) -> None:
    out = tmp_path / "a.ndjson"
    sink = NdjsonFileSink(out, max_bytes=1024, keep=2)
    with AuditLog(f"sqlite:///{tmp_path / 'x.db'}") as log:
        log.publish_many([{"id": f"m:{i}", "action": "monitor.down"} for i in range(40)])
        rows = log.store.read_committed(0, 100)  # type: ignore[attr-defined]
    for row in rows:
        sink.deliver([row])
    assert sorted(p.name for p in tmp_path.glob("a.ndjson*")) == ["a.ndjson", "a.ndjson.1", "a.ndjson.2"]
    kept = [e["uid"] for e in read_rotated(out, 2)]
    assert kept == [r.uid for r in rows][-len(kept) :]  # the newest, contiguous


def test_streams_list_shows_status_without_secrets_and_remove_forgets(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    added = cli(store, "add", "hook", "--webhook", "http://127.0.0.1:9/hook", "--action", "monitor.deleted")
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip()
    assert secret.startswith("whsec_")
    publish(store, 3)
    with AuditLog(store, workspace="acme") as log:
        log.publish_many([{"id": "m:1", "action": "monitor.deleted"}] * 2)
    listed = cli(store, "list", "--json")
    item = json.loads(listed.stdout)
    assert item["name"] == "hook" and item["options"]["secret"] == "***"
    # Behind by what the stream will deliver: its workspace's events that match its filter.
    assert item["events_behind"] == 2 and item["seconds_behind"] >= 0 and not item["paused"]
    assert secret not in listed.stdout
    assert cli(store, "list", workspace="other").stdout == ""  # another workspace sees none of it
    assert cli(store, "remove", "hook").returncode == 0
    assert cli(store, "list").stdout == ""
    assert os.stat(tmp_path / "audit.db.streams.db").st_mode & 0o077 == 0  # secrets: owner only


def test_streams_add_from_now_skips_what_is_already_committed(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    publish(store, 5)
    assert cli(store, "add", "late", "--ndjson", str(tmp_path / "late.ndjson"), "--from-now").returncode == 0
    uids = publish(store, 2)
    assert cli(store, "run").returncode == 0
    assert [json.loads(x)["uid"] for x in (tmp_path / "late.ndjson").read_text().splitlines()] == uids


@pytest.mark.slow  # ten CLI processes
def test_streams_bad_input_says_what_to_do(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    both = cli(store, "add", "x", "--ndjson", "a", "--syslog", "tcp://h:1")
    assert both.returncode == 2 and "exactly one of" in both.stderr
    bad_syslog = cli(store, "add", "x", "--syslog", "udp://h")
    assert bad_syslog.returncode == 2 and "tcp://HOST:PORT" in bad_syslog.stderr
    bad_secret = cli(store, "add", "x", "--webhook", "http://h/", "--secret", "whsec_!!")
    assert bad_secret.returncode == 2 and "cannot add stream 'x'" in bad_secret.stderr
    bad_name = cli(store, "add", "a b", "--ndjson", "a")
    assert bad_name.returncode == 2 and "stream name" in bad_name.stderr
    both_actor = cli(store, "add", "x", "--ndjson", "a", "--actor-in", "a", "--actor-not-in", "b")
    assert both_actor.returncode == 2 and "not both" in both_actor.stderr
    missing = cli(store, "remove", "nope")
    assert missing.returncode == 2 and "no stream named 'nope'" in missing.stderr
    assert cli(store, "add", "dup", "--ndjson", "a").returncode == 0
    dup = cli(store, "add", "dup", "--ndjson", "b")
    assert dup.returncode == 2 and "already has a stream named 'dup'" in dup.stderr
    nothing = cli(store, "run", "--all-workspaces", "ghost")
    assert nothing.returncode == 2 and "ghost" in nothing.stderr
    not_sqlite = cli("tinybird://t@127.0.0.1:1", "list")
    assert not_sqlite.returncode == 2 and "SQLite" in not_sqlite.stderr
    with StreamRegistry.for_store(store) as reg:
        assert [s.name for s in reg.list()] == ["dup"]


def test_ndjson_stream_rotates_when_the_period_of_the_last_write_has_passed(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    out = tmp_path / "audit.ndjson"
    added = cli(store, "add", "files", "--ndjson", str(out), "--rotate-every", "1h")
    assert added.returncode == 0, added.stderr
    first = publish(store, 3)
    assert cli(store, "run").returncode == 0
    second = publish(store, 2)
    assert cli(store, "run").returncode == 0  # the same hour: appended, no rotation
    assert not out.with_name("audit.ndjson.1").exists()
    # The file was last written two hours ago (as after a night without events): the next
    # batch starts a new file, and a restarted runner sees it from the file's own time.
    two_hours_ago = out.stat().st_mtime - 7_200
    os.utime(out, (two_hours_ago, two_hours_ago))
    third = publish(store, 4)
    assert cli(store, "run").returncode == 0
    assert [json.loads(x)["uid"] for x in out.with_name("audit.ndjson.1").read_text().splitlines()] == (
        first + second
    )
    assert [json.loads(x)["uid"] for x in out.read_text().splitlines()] == third


def test_ndjson_rotate_every_refuses_a_period_it_cannot_read(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    bad = cli(store, "add", "files", "--ndjson", str(tmp_path / "a.ndjson"), "--rotate-every", "hourly")
    assert bad.returncode == 2 and "1h or 1d" in bad.stderr
    with StreamRegistry.for_store(store) as reg:
        assert reg.list() == []
