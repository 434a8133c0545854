"""RFC 9162 Merkle tree hashing, the append frontier, and inclusion/consistency proofs.

Leaves hash as ``SHA-256(0x00 || data)`` and interior nodes as ``SHA-256(0x01 || left || right)``
(RFC 9162 section 2.1.1, the same as RFC 6962). The data of a leaf is the RFC 8785 (JCS)
canonical JSON of the stored event, so any implementation can recompute it from an export.

A proof is made of *complete* subtrees: node ``(level, index)`` is the hash of leaves
``[index * 2**level, (index + 1) * 2**level)``. Any range a proof needs splits into O(log n) such
nodes (:func:`aligned_nodes`). A store keeps the leaf hashes and the complete subtrees every
:data:`STRIDE` levels; any other node is :func:`fold`-ed from at most ``2**(STRIDE-1)`` stored
ones below it, so a proof still costs O(log n) reads and never a rebuild, while an append
writes ~1.07 rows instead of 2. Appending needs only the *frontier* (the hashes of the
complete subtrees that make up ``[0, n)``).

>>> a, b = leaf_hash(b"a"), leaf_hash(b"b")
>>> root_of([a, b]) == node_hash(a, b)
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring as _q
from typing import Any

from .jcs import (
    MAX_SAFE_INTEGER,
    canonical_json,
    canonical_json_text,
    encode_plain,
    encode_plain_many,
    fragment,
    parse_plain,
)

__all__ = [
    "EMPTY_ROOT",
    "canonical_json",
    "canonical_json_text",
    "leaf_data",
    "leaf_hash",
    "node_hash",
    "root_of",
    "fold",
    "stored_base",
    "append_leaf",
    "frontier_root",
    "aligned_nodes",
    "inclusion_ranges",
    "consistency_ranges",
    "resolve",
    "verify_inclusion",
    "verify_consistency",
    "ProofError",
]

Node = tuple[int, int]  # (level, index): leaves [index << level, (index + 1) << level)
Range = tuple[int, int]  # leaves [lo, hi)

EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) in RFC 9162
STRIDE = 4  # stored levels: 0 (the leaves), 4, 8, ...; a node between is folded from <= 8 below


class ProofError(ValueError):
    """A proof that does not verify, or that was asked for sizes that do not exist."""


def leaf_data(row: Sequence[Any]) -> bytes:
    """The canonical bytes of a stored event (a :class:`~auditbird.row.Row`, or a tuple of its
    first nine columns): RFC 8785 JSON of its wire object (the row's JSON columns parsed), so
    a reader can recompute it from an NDJSON export of the rows.

    Written by one encoder call rather than by re-parsing the whole wire object: the strings
    and integers as they are, the metadata parsed, the actor and the targets spliced in as
    their canonical bytes (their texts mostly repeat: cached). A single durable publish runs
    this once, on cold caches, where that saves ~5 us (``bench/``); the ``rfc8785`` package
    holds it to the standard in the tests. Anything the fast encoder might write otherwise
    (a float, an integer beyond 2**53, a character beyond the BMP) takes the exact tiers."""
    members = _members(row)
    if members is not None:
        try:
            out = encode_plain(members)
        except ValueError:  # a lone surrogate: the exact tiers say what is wrong
            out = None
        if out is not None:
            return out
    return _exact(row)


def leaf_data_many(rows: Sequence[Sequence[Any]]) -> list[bytes]:
    """:func:`leaf_data` of each row (a batch), checked once over all their bytes: ~0.6 us
    an event less. Any row that needs the exact tiers sends the batch through :func:`leaf_data`."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        members = _members(row)
        if members is None:
            break
        batch.append(members)
    else:
        try:
            out = encode_plain_many(batch)
        except ValueError:
            out = None
        if out is not None:
            return out
    return [leaf_data(row) for row in rows]


def _members(row: Sequence[Any]) -> dict[str, Any] | None:
    """The wire object of ``row`` for :func:`~.jcs.encode_plain` (the metadata parsed, the
    actor and targets as cached canonical fragments), or None where only the exact tiers can
    write it (an integer beyond 2**53, a float, text that is not JSON)."""
    uid, workspace, id_, action, actor, targets, metadata, timestamp, version = row[:9]
    timestamp, version = int(timestamp), int(version)
    if not (
        -MAX_SAFE_INTEGER <= timestamp <= MAX_SAFE_INTEGER
        and -MAX_SAFE_INTEGER <= version <= MAX_SAFE_INTEGER
    ):
        return None
    try:
        return {
            "action": action,
            "actor": _repeated(workspace, actor or "{}"),
            "id": id_,
            "metadata": parse_plain(metadata) if metadata else None,
            "targets": _repeated(workspace, targets or "[]"),
            "timestamp": timestamp,
            "uid": uid,
            "version": version,
            "workspace": workspace,
        }
    except ValueError:
        return None


def _exact(row: Sequence[Any]) -> bytes:
    """The whole wire object through the exact tiers (they say what is wrong, if anything)."""
    uid, workspace, id_, action, actor, targets, metadata, timestamp, version = row[:9]
    return canonical_json_text(
        f'{{"action":{_q(action)},"actor":{actor or "{}"},"id":{_q(id_)},"metadata":{metadata or "null"},'
        f'"targets":{targets or "[]"},"timestamp":{int(timestamp)},"uid":{_q(uid)},"version":{int(version)},'
        f'"workspace":{_q(workspace)}}}'
    )


# (workspace, JSON text) -> the text's RFC 8785 bytes (a fragment), for actors and targets. Keyed
# by workspace too, so how fast one tenant's append runs never depends on another's texts.
_REPEATED: dict[tuple[str, str], Any] = {}
_REPEATED_MAX = 4_096  # texts kept (each at most _REPEATED_TEXT long): bounded memory
_REPEATED_TEXT = 512


def _repeated(workspace: str, text: str) -> Any:
    key = (workspace, text)
    out = _REPEATED.get(key)
    if out is None:
        out = fragment(text)
        if len(text) <= _REPEATED_TEXT:
            if len(_REPEATED) >= _REPEATED_MAX:
                _REPEATED.clear()  # the working set comes back in a few appends
            _REPEATED[key] = out
    return out


def leaf_data_of(event: dict[str, Any]) -> bytes:
    """The canonical bytes of an exported wire object (one NDJSON line, parsed)."""
    return canonical_json(event)


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1): where RFC 9162 splits a range."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH of leaf hashes, straight from the RFC's definition (for tests and small trees)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root of a complete subtree from its ``2**k`` equal-sized children, left to right."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def stored_base(level: int, index: int) -> tuple[int, int, int]:
    """Where node ``(level, index)`` is kept: ``(base level, first index, count)`` of the stored
    nodes that :func:`fold` into it (itself, ``count == 1``, on a stored level)."""
    r = level % STRIDE
    return level - r, index << r, 1 << r


def append_leaf(frontier: list[bytes], size: int, leaf: bytes) -> list[tuple[int, int, bytes]]:
    """Add leaf number ``size`` to ``frontier`` (in place, largest subtree first) and return
    the complete nodes it makes, ``(level, index, hash)``, the leaf itself included."""
    made = [(0, size, leaf)]
    current, level, index = leaf, 0, size
    while index & 1:  # each trailing 1 bit closes a subtree with the peak to its left
        current = node_hash(frontier.pop(), current)
        level, index = level + 1, index >> 1
        made.append((level, index, current))
    frontier.append(current)
    return made


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """The root of the tree whose complete subtrees are ``frontier`` (largest first)."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for peak in reversed(frontier[:-1]):
        root = node_hash(peak, root)
    return root


def aligned_nodes(lo: int, hi: int) -> list[Node]:
    """The stored complete subtrees whose hashes combine into MTH(leaves[lo:hi]), in the order
    :func:`_combine` folds them (``lo`` is aligned as RFC 9162's recursion always leaves it)."""
    out: list[Node] = []
    while hi - lo > 0:
        n = hi - lo
        if n & (n - 1) == 0:
            level = n.bit_length() - 1
            out.append((level, lo >> level))
            break
        k = _split(n)
        level = k.bit_length() - 1
        out.append((level, lo >> level))
        lo += k
    return out


def _combine(hashes: Sequence[bytes]) -> bytes:
    root = hashes[-1]
    for h in reversed(hashes[:-1]):
        root = node_hash(h, root)
    return root


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose hashes form the inclusion proof of leaf ``index`` in a tree of ``size``
    leaves (RFC 9162 2.1.3.1, PATH), nearest the leaf first."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    out: list[Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def consistency_ranges(old: int, new: int) -> list[Range]:
    """The ranges whose hashes form the consistency proof from ``old`` to ``new`` leaves
    (RFC 9162 2.1.4.1, SUBPROOF), in the RFC's order."""
    if not 0 < old <= new:
        raise ProofError(f"no consistency proof from {old} to {new} leaves: need 0 < old <= new")
    out: list[Range] = []
    lo, hi, complete = 0, new, True
    m = old
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                out.append((lo, hi))
            break
        k = _split(n)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    out.reverse()
    return out


def resolve(ranges: Sequence[Range], fetch: Callable[[list[Node]], dict[Node, bytes]]) -> list[bytes]:
    """The hashes of ``ranges``, from the stored nodes ``fetch`` returns (one batch of reads)."""
    plans = [aligned_nodes(lo, hi) for lo, hi in ranges]
    wanted = sorted({node for plan in plans for node in plan})
    found = fetch(wanted) if wanted else {}
    missing = [node for node in wanted if node not in found]
    if missing:
        raise ProofError(f"the tree lacks stored nodes {missing[:3]}: it is damaged; run `auditbird verify`")
    return [_combine([found[node] for node in plan]) for plan in plans]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 2.1.3.2; raises :class:`ProofError` unless ``proof`` proves the leaf."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than a tree of this size needs")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than a tree of this size needs")
    if r != root:
        raise ProofError("the inclusion proof does not lead to the root")


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 2.1.4.2; raises :class:`ProofError` unless the tree of ``new`` leaves extends
    the tree of ``old`` leaves."""
    if not 0 < old <= new:
        raise ProofError(f"no consistency proof from {old} to {new} leaves: need 0 < old <= new")
    if old == new:
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("the two roots of the same size differ")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than these sizes need")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than these sizes need")
    if fr != old_root:
        raise ProofError("the consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("the consistency proof does not lead to the new root")
