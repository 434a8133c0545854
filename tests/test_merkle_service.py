"""GET /v1/checkpoint, /v1/checkpoint/consistency and /v1/events/{uid}/proof on a live
`auditbird serve` (a real subprocess on a loopback port), checked with the library's verifier."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from auditbird.provable.checkpoint import open_checkpoint
from auditbird.stores.merkle import verify_consistency, verify_inclusion


def _hashes(items: list[str]) -> list[bytes]:
    return [base64.b64decode(x) for x in items]


def test_the_service_serves_checkpoints_and_proofs_of_the_keys_workspace(
    start_service: Any, tmp_path: Path
) -> None:
    server = start_service(tmp_path / "svc")
    write, read, other = (
        server.mint("acme", "write"),
        server.mint("acme", "read"),
        server.mint("else", "read"),
    )
    with server.client(write) as c:
        for _ in range(3):
            assert c.post("/v1/events", json={"id": "m:1", "action": "monitor.down"}).status_code < 300
        r = c.post("/v1/events", json=[{"id": "m:2", "action": "a.b"} for _ in range(6)])
        assert r.status_code < 300, r.text
    with server.client(read) as c:
        page = c.get("/v1/events", params={"limit": 100}).json()
        all_uids = [e["uid"] for e in page["data"]]
        assert len(all_uids) == 9, page
        c_uid = all_uids[-1]  # the oldest
        text = c.get("/v1/checkpoint").text
        key = (tmp_path / "svc" / "service.db.checkpoint.key").read_text()
        verifier = _verifier_from_private(key)
        checkpoint = open_checkpoint(text, verifier)
        size = checkpoint.size  # the 9 events, and the service's own record of the read above
        assert checkpoint.origin.endswith("/acme") and size >= 9

        proof = c.get(f"/v1/events/{c_uid}/proof", params={"size": size}).json()
        assert (proof["tree_size"], proof["root_hash"]) == (size, base64.b64encode(checkpoint.root).decode())
        leaf, path = base64.b64decode(proof["leaf_hash"]), _hashes(proof["inclusion_path"])
        verify_inclusion(leaf, proof["leaf_index"], size, path, checkpoint.root)
        # The event as stored now, in the bytes its leaf hashes: a client can hash it itself.
        assert hashlib.sha256(b"\x00" + proof["leaf_data"].encode()).digest() == leaf
        assert json.loads(proof["leaf_data"])["uid"] == c_uid
        cons = c.get("/v1/checkpoint/consistency", params={"from": 3, "to": size}).json()
        old_root, path = base64.b64decode(cons["first_hash"]), _hashes(cons["consistency_path"])
        verify_consistency(3, size, old_root, checkpoint.root, path)

        assert c.get("/v1/events/nope/proof").status_code == 404
        assert c.get("/v1/checkpoint/consistency", params={"from": 5, "to": 4}).status_code == 422
        assert c.get(f"/v1/events/{c_uid}/proof", params={"size": 99}).status_code == 422
    with server.client(other) as c:  # another workspace's key sees its own (empty) tree only
        assert c.get(f"/v1/events/{c_uid}/proof").status_code == 404
        assert c.get("/v1/checkpoint").text.split("\n")[1] == "0"
    with server.client() as c:
        assert c.get("/v1/checkpoint").status_code == 401


def _verifier_from_private(text: str) -> str:
    from auditbird.provable.checkpoint import Signer

    return Signer.parse(text).verifier_key()
