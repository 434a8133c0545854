"""``verify`` without a checkpoint checks the tree's stored nodes against its leaves: one
``merkle_node`` row overwritten (and appends built on it since) no longer passes as "verified",
though the events and the leaf hashes all agree; the first forged node is named."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from auditbird import AuditLog, StoreUnavailable
from auditbird.provable import tree_root
from auditbird.provable.verify import verify_store
from auditbird.stores.merkle import root_of

pytestmark = pytest.mark.slow  # a few hundred appends and a CLI subprocess


def _publish(db: Path, start: int, stop: int) -> None:
    log = AuditLog(f"sqlite:///{db}")
    log.publish_many(
        [{"id": f"m:{n % 7}", "action": "monitor.down", "metadata": {"n": n}} for n in range(start, stop)]
    )
    log.close()


def _sql(db: Path, statement: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(statement)
    conn.close()


def _leaves(db: Path) -> list[bytes]:
    conn = sqlite3.connect(db)
    leaves = [bytes(h) for (h,) in conn.execute("SELECT hash FROM merkle_leaf ORDER BY idx")]
    conn.close()
    return leaves


def _verify_cli(db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditbird", "--store", f"sqlite:///{db}", "verify"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )


def test_a_forged_peak_that_later_appends_build_on_is_named(tmp_path: Path) -> None:
    """The brief's case: after 256 events the tree is one complete subtree, node (8,0); the
    intruder overwrites it (and the frontier the next append starts from); 44 appends build on
    it. Events and leaves agree, but the tree's root is no longer the root of its leaves."""
    db = tmp_path / "a.db"
    _publish(db, 0, 256)
    _sql(db, "UPDATE merkle_node SET hash = zeroblob(32) WHERE level = 8 AND idx = 0")
    _sql(db, "UPDATE merkle_tree SET frontier = zeroblob(32)")
    _publish(db, 256, 300)
    log = AuditLog(f"sqlite:///{db}")
    assert tree_root(log)[1] != root_of(_leaves(db))
    report = verify_store(log)
    log.close()
    assert not report.ok
    assert report.message().startswith(
        "forged: the tree's stored nodes disagree with its leaves: "
        "node (level 8, index 0), over events #1-#256, is not the hash of the leaves below it"
    )
    done = _verify_cli(db)
    assert done.returncode == 1, (done.stdout, done.stderr[-2000:])
    assert done.stdout.startswith(
        "FAILED forged: the tree's stored nodes disagree with its leaves: node (level 8"
    )


@pytest.mark.parametrize(
    "forge",
    [
        "UPDATE merkle_node SET hash = zeroblob(32) WHERE level = 4 AND idx = 1",
        "DELETE FROM merkle_node WHERE level = 4 AND idx = 1",
    ],
)
def test_a_forged_or_removed_inner_node_is_named(tmp_path: Path, forge: str) -> None:
    """A node below the peaks does not change the root but every inclusion proof through it."""
    db = tmp_path / "a.db"
    _publish(db, 0, 40)  # complete level-4 nodes (4,0) and (4,1): leaves 0-15 and 16-31
    _sql(db, forge)
    if forge.startswith("DELETE"):
        # The writer reloads its frontier from the stored peaks: (5,0) folds (4,0) and (4,1), so
        # with (4,1) gone it refuses to extend the tree rather than guess, and writes nothing.
        with pytest.raises(StoreUnavailable, match="lacks stored nodes under its frontier"):
            _publish(db, 40, 300)
        assert len(_leaves(db)) == 40
    else:
        _publish(db, 40, 300)
    log = AuditLog(f"sqlite:///{db}")
    report = verify_store(log)
    log.close()
    assert not report.ok
    assert report.message().startswith(
        "forged: the tree's stored nodes disagree with its leaves: "
        "node (level 4, index 1), over events #17-#32, is not the hash of the leaves below it"
    )
    done = _verify_cli(db)
    assert done.returncode == 1, (done.stdout, done.stderr[-2000:])
    assert done.stdout.startswith(
        "FAILED forged: the tree's stored nodes disagree with its leaves: node (level 4"
    )


def test_an_untouched_tree_of_several_stored_levels_verifies(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _publish(db, 0, 600)  # nodes on levels 4 and 8, and a ragged edge
    log = AuditLog(f"sqlite:///{db}")
    report = verify_store(log)
    assert tree_root(log)[1] == root_of(_leaves(db))
    log.close()
    assert (report.ok, report.events) == (True, 600)


def test_a_forged_inner_node_is_named_with_a_checkpoint_too(tmp_path: Path) -> None:
    """With a checkpoint of the whole tree no consistency proof is needed, so nothing read the
    stored nodes: a forged one under the signed root passed. The nodes are checked here too,
    past the checkpoint as well."""
    db = tmp_path / "a.db"
    _publish(db, 0, 300)
    cli = [sys.executable, "-m", "auditbird", "--store", f"sqlite:///{db}"]
    run = {"capture_output": True, "text": True, "env": os.environ.copy(), "timeout": 120}
    cp = tmp_path / "cp.txt"
    cp.write_text(subprocess.run([*cli, "checkpoint"], check=True, **run).stdout)  # type: ignore[call-overload]
    _publish(db, 300, 340)  # (4,19), over leaves 304-319, past the checkpoint
    for node in ((4, 1), (4, 19)):
        conn = sqlite3.connect(db)
        with conn:
            (saved,) = conn.execute(
                "SELECT hash FROM merkle_node WHERE level = ? AND idx = ?", node
            ).fetchone()
            conn.execute("UPDATE merkle_node SET hash = zeroblob(32) WHERE level = ? AND idx = ?", node)
        done = subprocess.run([*cli, "verify", "--checkpoint", str(cp)], **run)  # type: ignore[call-overload]
        with conn:
            conn.execute("UPDATE merkle_node SET hash = ? WHERE level = ? AND idx = ?", (saved, *node))
        conn.close()
        assert done.returncode == 1, (done.stdout, done.stderr[-2000:])
        assert done.stdout.startswith(
            "FAILED forged: the tree's stored nodes disagree with its leaves: "
            f"node (level 4, index {node[1]})"
        )
    done = subprocess.run([*cli, "verify", "--checkpoint", str(cp)], **run)  # type: ignore[call-overload]
    assert (done.returncode, done.stdout.split(";")[0]) == (0, "verified 300 events up to checkpoint 300")
