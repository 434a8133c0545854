"""Optimistic concurrency: writers that decided on the same revision — exactly one wins."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditbird import AuditLog, ConflictError, UnsupportedOperation
from tests.es_support import OPENSTATUS, MonitorState

WRITERS = 6


@pytest.fixture
def sqlite_log(db_path: Path) -> Iterator[AuditLog]:
    """A log over a real file, reading and writing with the OpenStatus catalog's schemas."""
    with AuditLog(f"sqlite:///{db_path}", registry=OPENSTATUS) as log:
        yield log


CREATED = {
    "id": "monitor:1",
    "action": "monitor.created",
    "metadata": {"before": None, "after": {"name": "api"}},
}


def test_threads_deciding_on_the_same_revision_exactly_one_wins(db_path: Path) -> None:
    AuditLog(f"sqlite:///{db_path}").publish_audit_log(CREATED)
    barrier = threading.Barrier(WRITERS)
    outcomes: list[str] = []

    def writer(n: int) -> None:
        with AuditLog(f"sqlite:///{db_path}", registry=OPENSTATUS) as log:  # its own connection
            state = log.project("monitor:1", MonitorState, snapshots=False)
            barrier.wait()
            try:
                log.publish_audit_log(
                    {"id": "monitor:1", "action": "monitor.paused", "metadata": {"reason": f"writer {n}"}},
                    expected_revision=state.revision,
                )
                outcomes.append("won")
            except ConflictError:
                outcomes.append("conflict")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["conflict"] * (WRITERS - 1) + ["won"]
    with AuditLog(f"sqlite:///{db_path}") as log:
        assert log.revision("monitor:1") == 2
        assert [e.action for e in log.history("monitor:1")] == ["monitor.created", "monitor.paused"]


WRITER = """
import sys, time, os
from auditbird import AuditLog, ConflictError
path, go, n = sys.argv[1], sys.argv[2], sys.argv[3]
log = AuditLog(f"sqlite:///{path}")
revision = log.revision("monitor:1")
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
try:
    log.publish_audit_log({"id": "monitor:1", "action": "monitor.paused", "metadata": {"reason": n}},
                          expected_revision=revision)
    print("won", flush=True)
except ConflictError:
    print("conflict", flush=True)
"""


def test_processes_deciding_on_the_same_revision_exactly_one_wins(db_path: Path, tmp_path: Path) -> None:
    AuditLog(f"sqlite:///{db_path}").publish_audit_log(CREATED)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db_path), str(go), str(n)], stdout=subprocess.PIPE, text=True
        )
        for n in range(WRITERS)
    ]
    for p in procs:  # every writer has read revision 1 before any may write
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    outcomes = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        outcomes.append(out.strip())
    assert sorted(outcomes) == ["conflict"] * (WRITERS - 1) + ["won"]
    with AuditLog(f"sqlite:///{db_path}") as log:
        assert log.revision("monitor:1") == 2


def test_the_loser_reloads_and_retries(sqlite_log: AuditLog) -> None:
    sqlite_log.publish_audit_log(CREATED, expected_revision=0)
    with pytest.raises(ConflictError, match="revision 1, not 0"):
        sqlite_log.publish_audit_log(CREATED, expected_revision=0)
    state = sqlite_log.project("monitor:1", MonitorState)
    sqlite_log.publish_audit_log(
        {"id": "monitor:1", "action": "monitor.paused"}, expected_revision=state.revision
    )
    assert sqlite_log.project("monitor:1", MonitorState).status == "paused"


class AppendOnlyStore:
    """A store with no atomic check-and-append (as Tinybird): it must not pretend."""

    def __init__(self) -> None:
        self.rows: list[Any] = []

    def append(self, rows: Any) -> None:
        self.rows.extend(rows)

    def query(self, q: Any) -> list[Any]:
        return []

    def close(self) -> None:
        pass


def test_a_store_without_atomic_appends_refuses_expected_revision() -> None:
    store = AppendOnlyStore()
    log = AuditLog(store)
    with pytest.raises(UnsupportedOperation, match="expected_revision"):
        log.publish_audit_log(CREATED, expected_revision=0)
    with pytest.raises(UnsupportedOperation):
        log.revision("monitor:1")
    assert store.rows == []


def test_the_tinybird_store_says_it_cannot() -> None:
    from auditbird.stores.capabilities import StreamStore, require
    from auditbird.stores.tinybird import TinybirdStore

    store = TinybirdStore.from_url("tinybird+http://token@127.0.0.1:9")  # never contacted
    assert StreamStore not in TinybirdStore.__mro__
    with pytest.raises(UnsupportedOperation, match="TinybirdStore does not support stream revisions"):
        require(store, StreamStore)
    with pytest.raises(UnsupportedOperation, match="TinybirdStore"):
        AuditLog(store).publish_audit_log(CREATED, expected_revision=0)


def test_revision_counts_events_not_schema_versions(sqlite_log: AuditLog) -> None:
    start = time.time()
    sqlite_log.publish_many([CREATED, {"id": "monitor:1", "action": "monitor.paused", "version": 1}])
    assert sqlite_log.revision("monitor:1") == 2 and time.time() - start < 5
