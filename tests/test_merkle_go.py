"""Our proofs and checkpoints, checked by Go's golang.org/x/mod/sumdb/tlog and sumdb/note.

The Go program (tests/go/tlogcheck) recomputes every tree hash from the leaves' data, checks
our inclusion and consistency proofs, makes its own proofs to compare byte for byte, and opens
our signed checkpoint with the note package. Go and Debian's golang-golang-x-mod-dev come from
scripts/test-deps.d/60-go-tlog.sh; the build is offline (GOPATH mode, /usr/share/gocode).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from auditbird import AuditLog
from auditbird.provable import ConsistencyProof, InclusionProof, consistency, prove, tree_root
from auditbird.provable.checkpoint import sign_checkpoint, signer_for
from auditbird.stores.merkle import leaf_data

GOCODE = Path("/usr/share/gocode/src/golang.org/x/mod/sumdb/tlog")


@pytest.fixture(scope="module")
def tlogcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None or not GOCODE.is_dir():
        pytest.skip("needs Go and golang-golang-x-mod-dev: run scripts/test-deps.d/60-go-tlog.sh")
    out = tmp_path_factory.mktemp("go")
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOCACHE": str(out / "cache")}
    env.pop("GOFLAGS", None)
    source = Path(__file__).parent / "go" / "tlogcheck"
    subprocess.run(
        [go, "build", "-o", str(out / "tlogcheck"), "."], cwd=source, env=env, check=True, timeout=300
    )
    return out / "tlogcheck"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _run(binary: Path, payload: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [str(binary)], input=json.dumps(payload), capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _inc(p: InclusionProof, index: int | None = None, size: int | None = None) -> dict[str, Any]:
    path = [_b64(h) for h in p.hashes]
    index, size = p.index if index is None else index, p.size if size is None else size
    return {"index": index, "size": size, "leaf_hash": _b64(p.leaf_hash), "path": path, "root": _b64(p.root)}


def _con(p: ConsistencyProof, old: int | None = None) -> dict[str, Any]:
    path = [_b64(h) for h in p.hashes]
    roots = {"old_root": _b64(p.old_root), "new_root": _b64(p.new_root)}
    return {"old": p.old if old is None else old, "new": p.new, "path": path, **roots}


def _log_with_events(tmp_path: Path) -> tuple[AuditLog, list[str]]:
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}", workspace="acme")
    uids = []
    for i in range(13):
        uids.append(
            log.publish_audit_log(
                {"id": f"m:{i % 3}", "action": "monitor.down", "metadata": {"n": i, "é": "ü"}}
            ).uid
        )
    batch = [
        {"id": "m:9", "action": "incident.create", "targets": [{"id": "t", "type": "page"}]}
        for _ in range(24)
    ]
    uids += [e.uid for e in log.publish_many(batch)]
    AuditLog(log.store, workspace="other").publish_audit_log({"id": "x", "action": "a.b"})  # another tree
    return log, uids


def test_go_tlog_recomputes_our_roots_and_accepts_our_proofs(tlogcheck: Path, tmp_path: Path) -> None:
    log, uids = _log_with_events(tmp_path)
    rows = list(log.store.iter_rows("acme"))  # type: ignore[attr-defined]
    assert len(rows) == len(uids) == 37
    inclusion = [prove(log, uid) for uid in uids] + [prove(log, uids[3], size=size) for size in (4, 5, 8, 20)]
    pairs = [(old, new) for new in (1, 2, 7, 8, 9, 16, 37) for old in range(1, new + 1)]
    proofs = [consistency(log, old, new) for old, new in pairs]
    payload = {
        "leaves": [_b64(leaf_data(row)) for row in rows],
        "inclusion": [_inc(p) for p in inclusion],
        "consistency": [_con(p) for p in proofs],
    }
    got = _run(tlogcheck, payload)
    assert [base64.b64decode(r) for r in got["roots"]] == [tree_root(log, n)[1] for n in range(1, 38)]
    assert got["inclusion"] == [""] * len(inclusion)
    assert got["consistency"] == [""] * len(proofs)
    # Go's own proofs are byte for byte ours.
    assert [[base64.b64decode(h) for h in p] for p in got["go_inclusion"]] == [
        list(p.hashes) for p in inclusion
    ]
    assert [[base64.b64decode(h) for h in p or []] for p in got["go_consistency"]] == [
        list(p.hashes) for p in proofs
    ]


def test_go_tlog_refuses_a_proof_for_another_leaf_or_size(tlogcheck: Path, tmp_path: Path) -> None:
    log, uids = _log_with_events(tmp_path)
    p = prove(log, uids[5])
    c = consistency(log, 6, 37)
    payload = {
        "leaves": [],
        "inclusion": [_inc(p, index=p.index + 1), _inc(p, size=p.size - 6)],
        "consistency": [_con(c, old=7)],
    }
    got = _run(tlogcheck, payload)
    assert all(got["inclusion"]) and all(got["consistency"])


def test_go_note_opens_our_signed_checkpoint_and_refuses_an_altered_one(
    tlogcheck: Path, tmp_path: Path
) -> None:
    log, _ = _log_with_events(tmp_path)
    text = sign_checkpoint(log)
    key = signer_for(log).verifier_key()
    size, root = tree_root(log)
    got = _run(tlogcheck, {"leaves": [], "note": text, "verifier_key": key})
    assert got["note_error"] == ""
    assert got["note_text"] == f"auditbird-audit/acme\n{size}\n{_b64(root)}\n"
    altered = text.replace(f"\n{size}\n", f"\n{size + 1}\n")
    assert (
        "invalid signature"
        in _run(tlogcheck, {"leaves": [], "note": altered, "verifier_key": key})["note_error"]
    )
