"""Inclusion and consistency proofs read from a store's tree: O(log n) stored hashes each.

>>> from auditbird import AuditLog
>>> log = AuditLog("sqlite:///:memory:")
>>> event = log.publish_audit_log({"id": "monitor:1", "action": "monitor.down"})
>>> proof = prove(log, event.uid)
>>> proof.verify()          # raises ProofError if it does not lead to proof.root
>>> (proof.index, proof.size)
(0, 1)
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from .._errors import NotFound
from ..log import AuditLog
from ..query import Query
from ..stores.capabilities import ProvableStore, require
from ..stores.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_ranges,
    inclusion_ranges,
    leaf_data,
    leaf_hash,
    resolve,
    verify_consistency,
    verify_inclusion,
)

__all__ = ["InclusionProof", "ConsistencyProof", "prove", "consistency", "tree_root", "provable_store"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class InclusionProof:
    """Leaf ``index`` (the event ``uid``) is in the tree of ``size`` leaves whose root is ``root``."""

    uid: str
    workspace: str
    index: int
    size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]
    root: bytes
    # The event's RFC 8785 bytes as stored now (``prove(..., with_data=True)``): a reader hashes
    # them itself, so a row changed after it was recorded cannot pass for the recorded leaf.
    leaf_data: bytes | None = None

    def verify(self) -> None:
        if self.leaf_data is not None and leaf_hash(self.leaf_data) != self.leaf_hash:
            raise ProofError(f"event {self.uid!r} as stored no longer hashes to the leaf recorded for it")
        verify_inclusion(self.leaf_hash, self.index, self.size, self.hashes, self.root)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "uid": self.uid,
            "workspace": self.workspace,
            "leaf_index": self.index,
            "tree_size": self.size,
            "leaf_hash": _b64(self.leaf_hash),
            "inclusion_path": [_b64(h) for h in self.hashes],
            "root_hash": _b64(self.root),
        }
        if self.leaf_data is not None:
            out["leaf_data"] = self.leaf_data.decode("utf-8")
        return out


@dataclass(frozen=True)
class ConsistencyProof:
    """The tree of ``new`` leaves (root ``new_root``) extends the tree of ``old`` (``old_root``)."""

    workspace: str
    old: int
    new: int
    hashes: tuple[bytes, ...]
    old_root: bytes
    new_root: bytes

    def verify(self) -> None:
        verify_consistency(self.old, self.new, self.old_root, self.new_root, self.hashes)

    def to_json(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "first": self.old,
            "second": self.new,
            "consistency_path": [_b64(h) for h in self.hashes],
            "first_hash": _b64(self.old_root),
            "second_hash": _b64(self.new_root),
        }


def provable_store(log_or_store: Any) -> ProvableStore:
    """The store behind an ``AuditLog`` (or a store), if it keeps a Merkle tree."""
    store: Any = log_or_store.store if isinstance(log_or_store, AuditLog) else log_or_store
    return require(store, ProvableStore)


def log_workspace(log_or_store: Any, workspace: str | None) -> str:
    """``workspace`` if given, else the log's (a bare store: the default workspace ``""``)."""
    if workspace is not None:
        return workspace
    return log_or_store.workspace if isinstance(log_or_store, AuditLog) else ""


def tree_root(
    log_or_store: Any, size: int | None = None, *, workspace: str | None = None
) -> tuple[int, bytes]:
    """``(size, root hash)`` of the workspace's tree (now, or at an earlier ``size``)."""
    store, ws = provable_store(log_or_store), log_workspace(log_or_store, workspace)
    current = store.tree_size(ws)
    size = current if size is None else size
    if not 0 <= size <= current:
        raise ProofError(f"the tree of workspace {ws!r} has {current} leaves, not {size}")
    if size == 0:
        return 0, EMPTY_ROOT
    (root,) = resolve([(0, size)], lambda nodes: store.tree_nodes(ws, nodes))
    return size, root


def prove(
    log_or_store: Any,
    uid: str,
    *,
    size: int | None = None,
    workspace: str | None = None,
    with_data: bool = False,
) -> InclusionProof:
    """The inclusion proof of event ``uid`` in the workspace's tree (now, or at ``size``);
    ``with_data``: with the event's canonical bytes as stored now (``InclusionProof.leaf_data``),
    so that :meth:`InclusionProof.verify` also checks the row against its recorded leaf."""
    store, ws = provable_store(log_or_store), log_workspace(log_or_store, workspace)
    index = store.tree_index(ws, uid)
    if index is None:
        raise NotFound(f"no event {uid!r} in the tree of workspace {ws!r}: check the uid and the workspace")
    size, root = tree_root(store, size, workspace=ws)
    ranges = inclusion_ranges(index, size)
    fetch = lambda nodes: store.tree_nodes(ws, nodes)  # noqa: E731
    (leaf,) = resolve([(index, index + 1)], fetch)
    data = None
    if with_data:
        rows = store.query(Query(workspace=ws, uid=uid, limit=1))
        if not rows:  # in the tree, but its row is gone: deleted behind auditbird's back
            raise ProofError(f"event {uid!r} is in the tree but no longer stored: run `auditbird verify`")
        data = leaf_data(rows[0])
    return InclusionProof(uid, ws, index, size, leaf, tuple(resolve(ranges, fetch)), root, data)


def consistency(
    log_or_store: Any, old: int, new: int | None = None, *, workspace: str | None = None
) -> ConsistencyProof:
    """The proof that the workspace's tree of ``new`` leaves (default: now) extends its tree of
    ``old`` leaves: nothing among the first ``old`` events changed since."""
    store, ws = provable_store(log_or_store), log_workspace(log_or_store, workspace)
    new_size, new_root = tree_root(store, new, workspace=ws)
    if not 0 < old <= new_size:
        raise ProofError(f"no consistency proof from {old} to {new_size} leaves: need 0 < old <= new")
    _, old_root = tree_root(store, old, workspace=ws)
    hashes = (
        ()
        if old == new_size
        else tuple(resolve(consistency_ranges(old, new_size), lambda nodes: store.tree_nodes(ws, nodes)))
    )
    return ConsistencyProof(ws, old, new_size, hashes, old_root, new_root)
