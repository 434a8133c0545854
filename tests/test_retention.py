"""Retention on SQLite: expired events' data leaves the file, their leaf hashes stay, and
provable history (proofs, consistency, `verify`) still holds; a dry run changes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from auditbird import AuditLog, retention_sqlite
from auditbird.event import now_ms
from auditbird.provable import consistency, prove, tree_root
from auditbird.provable.checkpoint import open_checkpoint, sign_checkpoint, signer_for
from auditbird.provable.verify import verify_store
from auditbird.retention import (
    RetentionError,
    apply_all,
    apply_retention,
    get_policy,
    parse_period,
    policies,
    set_policy,
)
from auditbird.stores.merkle import verify_consistency

from .test_merkle_go import _con, _inc, _run, tlogcheck  # noqa: F401 - tlogcheck is a fixture

DAY = 86_400_000
NOW = now_ms()


def _old(n: int, ws_log: AuditLog, days: int = 400, mark: str = "OLD") -> list[str]:
    """``n`` events older than a year, each with a payload and a target no one should find later."""
    return [
        ws_log.publish_audit_log(
            {
                "id": f"user:{i}",
                "action": "user.login",
                "timestamp": NOW - (days - i) * DAY,
                "targets": [{"id": f"{mark}TARGET{i}", "type": "session"}],
                "metadata": {"ip": f"{mark}PAYLOAD-{i}-zqx"},
            }
        ).uid
        for i in range(n)
    ]


def _young(n: int, ws_log: AuditLog) -> list[str]:
    return [
        ws_log.publish_audit_log({"id": "monitor:1", "action": "monitor.down", "metadata": {"n": i}}).uid
        for i in range(n)
    ]


def _file_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


def _rows(db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT * FROM audit_log ORDER BY position").fetchall()
    finally:
        conn.close()


def test_parse_period_accepts_units_and_refuses_nonsense() -> None:
    assert parse_period("365d") == 365 * DAY
    assert (
        parse_period("2w") == 14 * DAY and parse_period("48h") == 2 * DAY and parse_period("1y") == 365 * DAY
    )
    for bad in ("", "365", "d", "-1d", "1.5d", "0d", "1x", "30m", "101y", "365 days"):
        with pytest.raises(RetentionError, match="retention period"):
            parse_period(bad)


def test_apply_removes_expired_data_and_keeps_leaves_so_proofs_still_hold(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    old = _old(6, log)
    young = _young(5, log)
    other = AuditLog(log.store, workspace="other")
    kept_elsewhere = _old(2, other, mark="KEPT")  # another workspace, no policy: untouched
    signed_before = sign_checkpoint(log)
    before_size, before_root = tree_root(log)
    assert before_size == 11

    set_policy(log, "365d")
    report = apply_retention(log)

    assert (report.removed, report.oldest, report.newest) == (6, NOW - 400 * DAY, NOW - 395 * DAY)
    assert len(report.event_uids) == 1 and not report.dry_run
    listed = [e.uid for e in log.list(limit=100).events]
    assert not set(old) & set(listed) and set(young) <= set(listed)
    assert {e.uid for e in other.list(limit=10).events} == set(kept_elsewhere)
    # The run is itself an event, saying what it removed.
    (run,) = log.list(action="retention.apply", limit=5).events
    assert (run.uid,) == report.event_uids
    assert run.metadata["removed"] == 6 and run.metadata["leaf_ranges"] == [[0, 6]]
    # Nothing of the removed events is left in the file or its WAL (targets and text index too).
    log.close()
    other.close()
    data = _file_bytes(db)
    assert b"OLDPAYLOAD" not in data and b"OLDTARGET" not in data
    assert b"KEPTPAYLOAD-1-zqx" in data  # the search can find what is still there

    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    for uid in young:
        proof = prove(log, uid)
        proof.verify()
        assert proof.size == 13  # 11 events, retention.set, retention.apply
    # The tree now extends the one signed before retention: nothing earlier changed.
    c = consistency(log, before_size)
    assert c.old_root == before_root
    verify_consistency(before_size, c.new, before_root, c.new_root, c.hashes)
    cp = open_checkpoint(signed_before, signer_for(log).verifier_key())
    report_v = verify_store(log, cp)
    assert report_v.ok, report_v.message()
    assert report_v.expired == (6, 1, 6)
    assert "6 of them (#1-#6) expired by retention policy" in report_v.message()
    log.close()


def test_dry_run_reports_the_same_and_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    log = AuditLog(f"sqlite:///{db}")
    _old(4, log)
    _young(2, log)
    set_policy(log, "365d")
    rows, size = _rows(db), tree_root(log)
    dry = apply_retention(log, now=NOW, dry_run=True)
    assert (dry.removed, dry.dry_run, dry.event_uids) == (4, True, ())
    assert "would remove 4 events" in dry.message()
    assert _rows(db) == rows and tree_root(log) == size
    real = apply_retention(log, now=NOW)
    assert (real.removed, real.oldest, real.newest, real.cutoff) == (4, dry.oldest, dry.newest, dry.cutoff)
    again = apply_retention(log, now=NOW)
    assert again.removed == 0 and again.event_uids == () and "nothing older" in again.message()
    log.close()


def test_verify_tells_an_expired_event_from_a_deleted_one(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    log = AuditLog(f"sqlite:///{db}")
    _old(3, log)
    young = _young(3, log)
    set_policy(log, "365d")
    apply_retention(log)
    assert verify_store(log).ok
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM audit_log WHERE uid = ?", (young[1],))
    conn.close()
    report = verify_store(log)
    assert not report.ok
    assert (report.number, report.problem) == (5, "missing")  # 3 expired, young[0], then young[1]
    log.close()


def test_expired_events_out_of_commit_order_leave_gaps_that_still_verify(tmp_path: Path) -> None:
    """An old timestamp published late (a back-filled import) expires from the middle of the tree."""
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    a = _young(2, log)
    _old(1, log)
    b = _young(2, log)
    _old(2, log, days=500)
    set_policy(log, "365d")
    report = apply_retention(log)
    assert report.removed == 3
    (run,) = log.list(action="retention.apply", limit=5).events
    assert run.metadata["leaf_ranges"] == [[2, 3], [5, 7]]
    for uid in a + b:
        prove(log, uid).verify()
    result = verify_store(log)
    assert result.ok and result.expired == (3, 3, 7), result.message()
    log.close()


def test_rows_written_with_the_tree_off_get_their_leaves_before_they_expire(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    bulk = AuditLog(f"sqlite:///{db}?tree=off")
    _old(3, bulk)
    bulk.close()
    log = AuditLog(f"sqlite:///{db}?tree=off")
    set_policy(log, "365d")  # its event goes through write_rows with the tree: the tree catches up
    young = _young(2, AuditLog(f"sqlite:///{db}"))
    report = apply_retention(log)
    assert report.removed == 3
    checked = AuditLog(f"sqlite:///{db}")
    result = verify_store(checked)
    assert result.ok and result.expired == (3, 1, 3), result.message()
    for uid in young:
        prove(checked, uid).verify()
    checked.close()
    log.close()


def test_policies_are_per_workspace_and_apply_all_runs_each(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'audit.db'}"
    acme, beta, free = (AuditLog(store_url, workspace=ws) for ws in ("acme", "beta", "free"))
    _old(2, acme)
    _old(3, beta, days=100)
    _old(1, free)
    set_policy(acme, "365d")
    set_policy(beta, "30d")
    assert [(p.workspace, p.period) for p in policies(acme)] == [("acme", "365d"), ("beta", "30d")]
    assert get_policy(free) is None
    with pytest.raises(RetentionError, match="has no retention policy"):
        apply_retention(free)
    reports = apply_all(acme)
    assert [(r.workspace, r.removed) for r in reports] == [("acme", 2), ("beta", 3)]
    assert len(free.list(limit=10).events) == 1
    assert set_policy(beta, None) is None and [p.workspace for p in policies(acme)] == ["acme"]
    changes = [e.metadata["period"] for e in beta.list(action="retention.set", limit=5).events]
    assert sorted(changes, key=str) == ["30d", None] or set(changes) == {"30d", None}
    for log in (acme, beta, free):
        log.close()


def test_retention_refuses_a_store_it_cannot_apply_to() -> None:
    class NotSQLite:
        pass

    with pytest.raises(RetentionError, match="TTL"):
        set_policy(NotSQLite(), "365d")


def test_go_tlog_accepts_proofs_of_younger_events_after_retention(
    tmp_path: Path,
    tlogcheck: Path,  # noqa: F811 - the fixture imported above
) -> None:
    """Go's golang.org/x/mod/sumdb/tlog (nobody here wrote it) checks the proofs after the run."""
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}", workspace="acme")
    _old(7, log)
    young = _young(6, log)
    old_size = tree_root(log)[0]
    set_policy(log, "365d")
    assert apply_retention(log).removed == 7
    inclusion = [prove(log, uid) for uid in young]
    proofs = [consistency(log, old) for old in range(1, old_size + 1)]
    got = _run(
        tlogcheck,
        {"leaves": [], "inclusion": [_inc(p) for p in inclusion], "consistency": [_con(p) for p in proofs]},
    )
    assert got["inclusion"] == [""] * len(inclusion)
    assert got["consistency"] == [""] * len(proofs)
    log.close()


def test_a_long_backlog_is_removed_in_bounded_chunks_each_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention_sqlite, "CHUNK", 3)
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    _old(8, log)
    young = _young(2, log)
    set_policy(log, "365d")
    report = apply_retention(log)
    assert (report.removed, len(report.event_uids)) == (8, 3)
    assert (report.oldest, report.newest) == (NOW - 400 * DAY, NOW - 393 * DAY)
    runs = log.list(action="retention.apply", limit=10).events
    assert sorted(r.metadata["removed"] for r in runs) == [2, 3, 3]
    assert sorted(tuple(r.metadata["leaf_ranges"][0]) for r in runs) == [(0, 3), (3, 6), (6, 8)]
    result = verify_store(log)
    assert result.ok and result.expired == (8, 1, 8), result.message()
    for uid in young:
        prove(log, uid).verify()
    log.close()


def _forge_expiry(db: Path, uid: str, lo: int, run_uid: str) -> None:
    """What whoever can write the file does to hide a deletion: remove the row, claim retention did."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM audit_log WHERE uid = ?", (uid,))
        conn.execute(
            "INSERT INTO retention_expired (workspace, lo, hi, run_uid) VALUES ('acme', ?, ?, ?)",
            (lo, lo + 1, run_uid),
        )
    conn.close()


def test_a_deleted_young_event_claimed_as_expired_is_still_missing(tmp_path: Path) -> None:
    """The reviewer's forgery: no retention.apply event in the tree names the range."""
    db = tmp_path / "audit.db"
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    set_policy(log, "365d")  # makes the tables; its event is #1
    young = _young(5, log)
    _forge_expiry(db, young[2], 3, "forged")
    report = verify_store(log)
    assert (report.ok, report.number, report.problem) == (False, 4, "missing"), report.message()
    assert "no retention.apply event" in report.detail
    log.close()


def test_a_forged_range_under_a_real_runs_uid_is_still_missing(tmp_path: Path) -> None:
    """The run's event carries a digest of every range it removed: one more range breaks it."""
    db = tmp_path / "audit.db"
    log = AuditLog(f"sqlite:///{db}", workspace="acme")
    _old(2, log)
    young = _young(3, log)
    set_policy(log, "365d")
    (run_uid,) = apply_retention(log).event_uids
    assert verify_store(log).ok
    _forge_expiry(db, young[1], 3, run_uid)
    report = verify_store(log)
    assert (report.ok, report.number, report.problem) == (False, 4, "missing"), report.message()
    log.close()


def test_retention_keeps_its_own_run_events_so_later_verifies_still_hold(tmp_path: Path) -> None:
    """A later run must not remove the event that accounts for an earlier run's ranges."""
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}", workspace="acme")
    _old(2, log)
    set_policy(log, "365d")
    (first,) = apply_retention(log).event_uids
    _young(1, log)
    later = apply_retention(log, now=now_ms() + 400 * DAY)  # everything else is old by then
    assert later.removed > 0
    kept = [e.uid for e in log.list(action="retention.apply", limit=10).events]
    assert first in kept
    result = verify_store(log)
    assert result.ok, result.message()
    log.close()
