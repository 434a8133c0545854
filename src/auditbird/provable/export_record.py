"""Naming the first bad line of an export: the tree's own record of the leaves, carried in it.

``checkpoint --export`` writes, before each chunk of :data:`CHUNK` leaves, a line
``{"tree_leaves":{"from":N,"hashes":"<base64>"}}``: the leaf hashes the tree recorded for
leaves ``N`` onwards. They sit in the same untrusted file, so they are believed only if they
fold to the signed root; then (SHA-256 being collision resistant) they are the leaves that were
signed, and the first place where a line's hash differs from its recorded one is where the
export was altered, with a look-ahead of one telling missing, inserted and reordered apart.

Cost: one comparison of two byte strings per chunk while the two agree (the recorded chunk's
root is then the events' own, not hashed again); a recorded chunk is folded only where it
differs. Memory: at most :data:`MAX_WAITING` chunks wait for their counterpart (a large block
of inserted or removed lines); past that the export is still checked, just not located.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from ..stores.merkle import append_leaf, frontier_root
from .report import VerifyReport

__all__ = ["CHUNK_LEVEL", "CHUNK", "Recorded", "fold_chunk", "record_line", "tail_root"]

CHUNK_LEVEL = 10
CHUNK = 1 << CHUNK_LEVEL  # leaves folded at once while verifying an export
MAX_WAITING = 64  # chunks (2 MiB of hashes a side) held while one side runs ahead
_KEYS = frozenset({"from", "hashes"})
_NODE = hashlib.sha256(b"\x01")  # RFC 9162's interior-node prefix, copied per node


def fold_chunk(leaves: list[bytes]) -> bytes:
    """The root of a complete subtree of ``2**k`` leaves: :func:`~auditbird.stores.merkle.fold`,
    inlined (the fold is half the hashing an export's check does; copying a hash already fed
    the 0x01 prefix costs less than concatenating it)."""
    level = leaves
    new = _NODE.copy
    while len(level) > 1:
        parents: list[bytes] = []
        append = parents.append
        for left, right in zip(level[0::2], level[1::2], strict=True):
            h = new()
            h.update(left)
            h.update(right)
            append(h.digest())
        level = parents
    return level[0]


def tail_root(peaks: list[bytes], chunk: int, leaves: list[bytes]) -> bytes:
    """The root of a tree whose complete chunks before ``chunk`` are folded into ``peaks`` (left
    as is) and whose leaves from there on are ``leaves``."""
    peaks = list(peaks)
    whole = len(leaves) - len(leaves) % CHUNK
    for at in range(0, whole, CHUNK):
        append_leaf(peaks, chunk + at // CHUNK, fold_chunk(leaves[at : at + CHUNK]))
    rest: list[bytes] = []
    for i, leaf in enumerate(leaves[whole:]):
        append_leaf(rest, i, leaf)
    return frontier_root(peaks + rest)


def record_line(start: int, hashes: bytes) -> bytes:
    return b'{"tree_leaves":{"from":%d,"hashes":"%s"}}\n' % (start, base64.b64encode(hashes))


def _split(blob: bytes) -> list[bytes]:
    return [blob[i : i + 32] for i in range(0, len(blob), 32)]


class Recorded:
    """The recorded leaves of an export, matched against the leaves its lines hash to."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.on = True  # False: no record, or too far out of step to locate with it
        self.seen = False
        self.count = 0  # recorded leaves read so far (all of them, not only the first size)
        self.partial = False  # a record shorter than CHUNK was read: it must be the last
        self.peaks: list[bytes] = []  # the recorded leaves' frontier of chunk roots
        self.paired = 0  # chunks compared so far
        self.waiting_r: dict[int, bytes] = {}
        self.waiting_c: dict[int, tuple[bytes, bytes]] = {}
        self.first: list[Any] | None = None  # [index, d0, t0, d1, t1] of the first difference

    def add_record(self, value: Any, number: int) -> str | None:
        """Take one ``tree_leaves`` line; the reason it is malformed, or None."""
        if type(value) is not dict or value.keys() != _KEYS or type(value["from"]) is not int:
            return 'it is not {"tree_leaves":{"from":N,"hashes":"<base64>"}}'
        try:
            blob = base64.b64decode(value["hashes"], validate=True) if type(value["hashes"]) is str else b"?"
        except binascii.Error:
            blob = b"?"
        if not blob or len(blob) % 32 or len(blob) > 32 * CHUNK:
            return "its hashes are not the base64 of up to 1024 32-byte SHA-256 hashes"
        if value["from"] != self.count or self.partial or self.count % CHUNK:
            return f"it records leaves from #{value['from'] + 1}, not #{self.count + 1}: lines were moved"
        self.seen = True
        start, index = self.count, self.count >> CHUNK_LEVEL
        self.count += len(blob) // 32
        self.partial = len(blob) < 32 * CHUNK
        if not self.on or start >= self.size:  # past the checkpoint: not part of the check
            pass
        elif not self.partial and self.count <= self.size:
            pair = self.waiting_c.pop(index, None)
            if pair is None:
                self.waiting_r[index] = blob
                self._bound()
            else:
                self._pair(index, pair[0], pair[1], blob)
        else:
            self.waiting_r[index] = blob  # the chunk the checkpoint ends in: settled at the end
        return None

    def add_chunk(self, index: int, leaves: bytes, root: bytes) -> None:
        """The leaves of complete chunk ``index`` of the export's lines, and their root."""
        if not self.on:
            return
        if not self.seen:  # a record precedes its chunk: none so far means there is none
            self.on = False
            return
        blob = self.waiting_r.pop(index, None)
        if blob is None:
            self.waiting_c[index] = (leaves, root)
            self._bound()
        else:
            self._pair(index, leaves, root, blob)

    def _bound(self) -> None:
        if len(self.waiting_r) > MAX_WAITING or len(self.waiting_c) > MAX_WAITING:
            self.on = False
            self.waiting_r.clear()
            self.waiting_c.clear()

    def _pair(self, index: int, leaves: bytes, root: bytes, blob: bytes) -> None:
        self._look_ahead(leaves, blob)  # a difference that ended the chunk before looks in here
        if leaves == blob:
            append_leaf(self.peaks, index, root)
        else:
            append_leaf(self.peaks, index, fold_chunk(_split(blob)))
            self._differ(index * CHUNK, leaves, blob)
        self.paired = index + 1

    def _differ(self, base: int, leaves: bytes, blob: bytes) -> None:
        if self.first is not None:
            return
        end = min(len(leaves), len(blob))
        j = next((k for k in range(0, end, 32) if leaves[k : k + 32] != blob[k : k + 32]), end)
        self.first = [base + j // 32, leaves[j : j + 32] or None, blob[j : j + 32] or None, None, None]
        self._look_ahead(leaves[j + 32 :], blob[j + 32 :])

    def _look_ahead(self, leaves: bytes, blob: bytes) -> None:
        """Fill in the leaves right after the first difference, when it ended a chunk."""
        first = self.first
        if first is not None:
            if first[3] is None and leaves:
                first[3] = leaves[:32]
            if first[4] is None and blob:
                first[4] = blob[:32]

    def finish(self, pending: list[bytes], size: int, after: bytes) -> bytes | None:
        """Settle the tail (the last partial chunk and whatever still waits) given the leaves
        of the export's last, incomplete chunk (and ``after``, the first past the checkpoint, or
        b""); the recorded root, or None when the record cannot be used (absent, short, out of
        step)."""
        if not self.on or not self.seen or self.count < size:
            return None
        start = self.paired
        recorded = b"".join(self.waiting_r[i] for i in sorted(self.waiting_r) if i >= start)
        recorded = recorded[: (size - start * CHUNK) * 32]
        ours = b"".join([*(self.waiting_c[i][0] for i in sorted(self.waiting_c) if i >= start), *pending])
        self._look_ahead(ours, recorded)
        if ours != recorded:
            self._differ(start * CHUNK, ours, recorded)
        self._look_ahead(after, b"")  # a line inserted last shows as one past the checkpoint
        return tail_root(self.peaks, start, _split(recorded))

    def report(self, size: int, count: int) -> VerifyReport:
        """The first difference, named (call only once the record folded to the signed root)."""
        assert self.first is not None
        index, d0, t0, d1, t1 = self.first
        n = index + 1
        if d0 is None:
            problem, why = "missing", f"the export ends after {count} events; the checkpoint covers {size}"
        elif t1 is not None and d1 is not None and d0 == t1 and d1 == t0:
            problem, why = "reordered", f"events #{n} and #{n + 1} swapped places"
        elif t1 is not None and d0 == t1:
            problem, why = "missing", f"event #{n} was removed from the export"
        elif d1 is not None and d1 == t0:
            problem, why = "inserted", f"the line at #{n} holds an event the tree never recorded"
        else:
            problem, why = "changed", f"event #{n} no longer hashes to the leaf the tree recorded for it"
        return VerifyReport(False, index, size, n, problem, why)
