"""The tree where Tinybird holds the events: the relay publishes leaves and signed checkpoints
beside them in the local Tinybird server, and verify checks what comes back from Tinybird; then
rows are deleted and altered with ClickHouse's own SQL (chDB on the server's data, as someone with
Tinybird write access would) and verify names the position."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("chdb")

from auditbird import AuditLog, Tinybird  # noqa: E402
from auditbird.provable.checkpoint import CheckpointError, signer_for  # noqa: E402
from auditbird.provable.tinybird_verify import latest_checkpoint, verify_tinybird  # noqa: E402
from auditbird.relay import Relay  # noqa: E402
from auditbird.stores.tinybird import TinybirdStore  # noqa: E402

pytestmark = pytest.mark.slow  # a server of its own, stopped and restarted around each edit


def _uuid(uid: str) -> str:
    """A uid auditbird made (a UUID), so it can stand in the SQL text of the intruder's edit."""
    return str(uuid.UUID(uid))


def _url(server: Any) -> str:
    return f"tinybird+http://{server.token}@{server.url.removeprefix('http://')}"


def _clickhouse(server: Any, *statements: str) -> None:
    """Run SQL on the stopped server's data, in a process of its own (one chDB per process)."""
    server.stop()
    script = (
        "import sys, chdb.session\n"
        "s = chdb.session.Session(sys.argv[1])\n"
        "for q in sys.argv[2:]:\n"
        "    s.query(q)\n"
        "s.close()\n"
    )
    subprocess.run([sys.executable, "-c", script, str(server.data), *statements], check=True, timeout=120)
    server.restart()


@pytest.fixture(scope="module")
def server(tinybird_server_factory: Callable[..., Any]) -> Any:
    return tinybird_server_factory()


def _relayed(tmp_path: Path, server: Any, workspace: str, n: int = 12) -> tuple[Path, list[str], str]:
    db = tmp_path / "app.db"
    log = AuditLog(f"sqlite:///{db}", workspace=workspace)
    uids = [
        log.publish_audit_log({"id": f"m:{i % 3}", "action": "monitor.down", "metadata": {"n": i}}).uid
        for i in range(n)
    ]
    key = signer_for(log).verifier_key()
    log.close()
    with Relay(f"sqlite:///{db}", _url(server), batch=5) as relay:
        assert relay.run() == n
    return db, uids, key


def _store(server: Any) -> TinybirdStore:
    return TinybirdStore(Tinybird(token=server.token, host=server.url))


def test_relayed_events_verify_against_the_published_checkpoint(tmp_path: Path, server: Any) -> None:
    _, uids, key = _relayed(tmp_path, server, "tb-ok")
    with _store(server) as store:
        assert latest_checkpoint(store, "tb-ok").split("\n")[1] == "12"
        report = verify_tinybird(store, key, workspace="tb-ok")
        assert report.ok and report.events == 12, report.message()
        other_key = signer_for(AuditLog(f"sqlite:///{tmp_path / 'other.db'}")).verifier_key()
        with pytest.raises(CheckpointError, match="no signature by"):
            verify_tinybird(store, other_key, workspace="tb-ok")


def test_a_row_deleted_in_tinybird_is_named_by_position(tmp_path: Path, server: Any) -> None:
    _, uids, key = _relayed(tmp_path, server, "tb-del")
    _clickhouse(server, f"DELETE FROM audit_log WHERE workspace = 'tb-del' AND uid = '{_uuid(uids[6])}'")  # noqa: S608
    with _store(server) as store:
        report = verify_tinybird(store, key, workspace="tb-del")
    assert (report.ok, report.number, report.problem) == (False, 7, "missing"), report.message()
    assert uids[6] in report.detail


def test_a_row_altered_in_tinybird_is_named_by_position(tmp_path: Path, server: Any) -> None:
    _, uids, key = _relayed(tmp_path, server, "tb-alt")
    _clickhouse(
        server,
        "ALTER TABLE audit_log UPDATE metadata = '{\"n\":99}' "
        f"WHERE workspace = 'tb-alt' AND uid = '{_uuid(uids[3])}' SETTINGS mutations_sync = 2",
    )
    with _store(server) as store:
        report = verify_tinybird(store, key, workspace="tb-alt")
    assert (report.ok, report.number, report.problem) == (False, 4, "changed"), report.message()


def test_a_row_written_behind_the_relay_is_reported_inserted(tmp_path: Path, server: Any) -> None:
    _, uids, key = _relayed(tmp_path, server, "tb-ins")
    with _store(server) as store:
        AuditLog(store, workspace="tb-ins").publish_audit_log({"id": "m:1", "action": "monitor.up"})
        report = verify_tinybird(store, key, workspace="tb-ins")
    assert (report.ok, report.problem) == (False, "inserted"), report.message()


def test_an_edited_published_tree_is_reported_rewritten(tmp_path: Path, server: Any) -> None:
    _, uids, key = _relayed(tmp_path, server, "tb-tree")
    _clickhouse(server, "DELETE FROM audit_tree WHERE workspace = 'tb-tree' AND idx = 2")
    with _store(server) as store:
        report = verify_tinybird(store, key, workspace="tb-tree")
    assert (report.ok, report.problem) == (False, "rewritten"), report.message()
    assert "lacks leaf #3" in report.detail


def test_verify_cli_on_a_tinybird_store(tmp_path: Path, server: Any) -> None:
    _, uids, key = _relayed(tmp_path, server, "tb-cli")
    key_file = tmp_path / "key.txt"
    key_file.write_text(key + "\n")
    cli = [sys.executable, "-m", "auditbird", "--store", _url(server), "-w", "tb-cli", "verify"]
    env = os.environ.copy()
    no_key = subprocess.run(cli, capture_output=True, text=True, timeout=120, env=env)
    assert no_key.returncode == 2 and "--public-key" in no_key.stderr
    done = subprocess.run(
        [*cli, "--public-key", str(key_file)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("verified 12 events up to checkpoint 12")
    _clickhouse(server, f"DELETE FROM audit_log WHERE workspace = 'tb-cli' AND uid = '{_uuid(uids[0])}'")  # noqa: S608
    failed = subprocess.run(
        [*cli, "--public-key", str(key_file)], capture_output=True, text=True, timeout=120, env=env
    )
    assert failed.returncode == 1 and "FAILED event #1: missing" in failed.stdout


def test_a_resent_batch_and_an_older_saved_checkpoint_still_verify(tmp_path: Path, server: Any) -> None:
    """A crash after the leaves but before the relay stored its position re-sends them: identical."""
    db, uids, key = _relayed(tmp_path, server, "tb-again", n=7)
    with _store(server) as store:
        saved = latest_checkpoint(store, "tb-again")
    log = AuditLog(f"sqlite:///{db}", workspace="tb-again")
    for i in range(4):
        log.publish_audit_log({"id": "m:9", "action": "monitor.up", "metadata": {"i": i}})
    log.close()
    with Relay(f"sqlite:///{db}", _url(server), batch=5) as relay:
        assert relay.run() == 4
        assert relay.tree is not None
        relay.tree.publish(relay.source.read_committed(0, 100))  # every leaf and checkpoint again
    with _store(server) as store:
        assert latest_checkpoint(store, "tb-again").split("\n")[1] == "11"
        report = verify_tinybird(store, key, workspace="tb-again")
        assert report.ok and report.events == 11, report.message()
        older = verify_tinybird(store, key, workspace="tb-again", checkpoint_text=saved)
        assert older.ok and older.events == 7, older.message()


def test_a_deleted_row_is_missing_not_expired_unless_the_caller_names_a_date(
    tmp_path: Path, server: Any
) -> None:
    """The published tree's timestamp is not signed: without --expired-before, no row is "expired"."""
    _, uids, key = _relayed(tmp_path, server, "tb-ttl")
    _clickhouse(server, f"DELETE FROM audit_log WHERE workspace = 'tb-ttl' AND uid = '{_uuid(uids[4])}'")  # noqa: S608
    with _store(server) as store:
        report = verify_tinybird(store, key, workspace="tb-ttl")
        assert (report.ok, report.number, report.problem) == (False, 5, "missing"), report.message()
        assert "possibly removed by the datasource TTL" in report.detail
        assert "--expired-before" in report.detail
        young = verify_tinybird(store, key, workspace="tb-ttl", expired_before=1)
        assert (young.ok, young.number) == (False, 5), young.message()
        opted = verify_tinybird(store, key, workspace="tb-ttl", expired_before=2**62)
        assert opted.ok and opted.expired == (1, 5, 5), opted.message()


def test_a_back_dated_copy_of_a_leaf_is_reported_rewritten(tmp_path: Path, server: Any) -> None:
    """An intruder adds the leaf again with an old timestamp (to pass as TTL-expired): the copies differ."""
    _, uids, key = _relayed(tmp_path, server, "tb-old")
    _clickhouse(
        server,
        "INSERT INTO audit_tree (workspace, idx, uid, leaf_hash, timestamp) "
        "SELECT workspace, idx, uid, leaf_hash, 0 FROM audit_tree WHERE workspace = 'tb-old' AND idx = 4",
        f"DELETE FROM audit_log WHERE workspace = 'tb-old' AND uid = '{_uuid(uids[4])}'",  # noqa: S608
    )
    with _store(server) as store:
        report = verify_tinybird(store, key, workspace="tb-old", expired_before=1_000)
    assert (report.ok, report.problem) == (False, "rewritten"), report.message()
    assert "two different leaves for event #5" in report.detail


def test_verify_cli_expired_before_on_tinybird(tmp_path: Path, server: Any) -> None:
    _, uids, key = _relayed(tmp_path, server, "tb-exp")
    key_file = tmp_path / "key.txt"
    key_file.write_text(key + "\n")
    cli = [sys.executable, "-m", "auditbird", "--store", _url(server), "-w", "tb-exp", "verify"]
    cli += ["--public-key", str(key_file)]
    env = os.environ.copy()
    _clickhouse(server, f"DELETE FROM audit_log WHERE workspace = 'tb-exp' AND uid = '{_uuid(uids[0])}'")  # noqa: S608
    bad = subprocess.run(
        [*cli, "--expired-before", "last week"], capture_output=True, text=True, timeout=120, env=env
    )
    assert bad.returncode == 2 and "--expired-before" in bad.stderr
    past = subprocess.run(
        [*cli, "--expired-before", "2000-01-01"], capture_output=True, text=True, timeout=120, env=env
    )
    assert past.returncode == 1 and "FAILED event #1: missing" in past.stdout
    later = subprocess.run(
        [*cli, "--expired-before", "2999-01-01"], capture_output=True, text=True, timeout=120, env=env
    )
    assert later.returncode == 0, later.stdout + later.stderr
    assert "1 of them (#1-#1) expired" in later.stdout and "not signed" in later.stdout
