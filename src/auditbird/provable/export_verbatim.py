"""The fast check of an export: each event line hashed as it stands, the file read in blocks.

``checkpoint --export`` writes every kept event as the exact bytes its leaf hashes (the RFC
8785 form of the stored event), so an untouched export verifies without parsing its events:
``SHA-256(0x00 || line)`` is the leaf. This module does that and nothing else; whenever the
file is not such an export (a line spelled otherwise, a blank line, a malformed or misplaced
expired line or record, a line too long, a difference from the tree's record, or a root that
does not match) it gives up, and :func:`.export.verify_export` runs the exact check from the
start, which re-canonicalises every line and alone decides the report or the error. So this
path only ever *accepts*, and only what the exact check accepts too.

Why accepting here is sound (the argument ``tests/test_verify_export_verbatim.py`` holds the
code to). The checkpoint signs the root of a RFC 9162 tree; its leaf ``i`` is
``SHA-256(0x00 || d_i)``, where ``d_i`` is the RFC 8785 bytes of stored event ``i`` (a wire
object with a ``uid``: :func:`auditbird.stores.merkle.leaf_data`, the only maker of leaves), or
the hash an expired line carries, which the exact check also takes as is. If the leaves this
path computes fold to the signed root, then (SHA-256 being collision resistant, and RFC 9162
separating leaves from nodes by their first byte) every event line's bytes, its line end
aside, *are* ``d_i``. RFC 8785 output is a fixed point of canonicalisation, so the exact check
would compute the very same leaf for that line, parse it as an object with a ``uid``, and
reach the same verdict; expired lines, the tree's records and any lines past the checkpoint
are read here exactly as the exact check reads them (the same functions), and only in their
canonical form: any other spelling (a key named twice among them, which a parser reads as its
last value and another reader as its first) is left to the exact check, which refuses a
repeated key. An event line hashed as it stands cannot repeat a key: RFC 8785 output is made
from a parsed object, whose keys are unique. A line that is not
``d_i`` (another spelling of the event, a changed field, bytes added) hashes to another leaf,
the root differs, and the exact check takes over: it accepts another spelling of the same
event, and names the position of anything else.

Line ends: ``\\n`` or ``\\r\\n`` (canonical JSON never holds a raw CR or LF, so stripping them
cannot turn a line into ``d_i``); a UTF-8 byte order mark before the first line is skipped,
as the exact check does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from ..stores.jcs import decode_canonical
from ..stores.merkle import append_leaf
from .checkpoint import Checkpoint
from .export_format import BOM, ExportError, expired_leaf
from .export_record import CHUNK, CHUNK_LEVEL, Recorded, fold_chunk, tail_root
from .report import VerifyReport

__all__ = ["BLOCK", "verify_verbatim"]

BLOCK = 1 << 20  # bytes read at once: shorter than any line the exact check refuses as too long
_LEAF = hashlib.sha256(b"\x00")  # RFC 9162's leaf prefix, copied per leaf


def _leaf_hashes(lines: list[bytes]) -> list[bytes]:
    """``SHA-256(0x00 || line)`` of each line (a copy of a hash already fed the prefix costs
    less than concatenating it to every line)."""
    hashes: list[bytes] = []
    append, new = hashes.append, _LEAF.copy
    for line in lines:
        h = new()
        h.update(line)
        append(h.digest())
    return hashes


class _NotVerbatim(Exception):
    """The export is not one this path can accept: the exact check decides."""


def _blocks(lines: BinaryIO, longest: int) -> Iterator[list[bytes]]:
    """The export's lines, without their line ends, a block's worth at a time. A line of
    ``longest`` bytes or more before its ``\\n`` (which the exact check refuses) stops it: only
    the head of such a line and one block are ever held."""
    read = lines.read
    tail = b""
    bom = True  # the first line may start with a byte order mark: drop it (once)
    while block := read(BLOCK):
        # Only the line the last block left unfinished can be longer than a block: stop before
        # it reaches the limit, so that no more than it and a block are ever held.
        end = block.find(b"\n")
        if len(tail) + (len(block) if end < 0 else end) >= longest:
            raise _NotVerbatim
        crlf = b"\r" in block or tail[-1:] == b"\r"  # (a block may end between CR and LF)
        parts = (tail + block).split(b"\n") if tail else block.split(b"\n")
        tail = parts.pop()  # the start of a line the next block ends (b"" after a line end)
        if bom and parts:
            bom = False
            if parts[0].startswith(BOM):
                parts[0] = parts[0][len(BOM) :]
        if crlf:
            parts = [p[:-1] if p[-1:] == b"\r" else p for p in parts]
        if b"" in parts:  # blank lines are no event (the exact check skips whitespace-only ones)
            parts = [p for p in parts if p]
        yield parts
    if bom and tail.startswith(BOM):
        tail = tail[len(BOM) :]
    if tail.endswith(b"\r"):
        tail = tail[:-1]
    if tail:
        yield [tail]


def _parsed(line: bytes) -> dict[str, Any]:
    """A line that is not hashed as it stands (a record, an expired leaf, one past the
    checkpoint), parsed as the exact check parses it. Only its canonical form is read here:
    any other spelling (a repeated key among them, which a parse would read as its last value)
    is left to the exact check."""
    try:
        value, canonical = decode_canonical(line)
    except (ValueError, RecursionError) as exc:  # nested too deep too: the exact check names it
        raise _NotVerbatim from exc
    if canonical != line or type(value) is not dict:
        raise _NotVerbatim
    return value


class _Leaves:
    """The export's leaves so far: folded a chunk at a time, each chunk matched against the
    tree's record of it (where the export carries one), as the exact check does."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0  # leaf lines read (events and expired leaves), past the checkpoint too
        self.pending: list[bytes] = []  # the leaves of the chunk being read
        self.peaks: list[bytes] = []  # the frontier of complete chunks of CHUNK leaves
        self.chunks = 0
        self.recorded = Recorded(size)
        self.expired = [0, 0, 0]  # count, first #, last #

    def add(self, leaves: list[bytes]) -> None:
        """Leaves ``count`` onwards (none past the checkpoint)."""
        pending = self.pending
        pending += leaves
        self.count += len(leaves)
        while len(pending) >= CHUNK:
            chunk = pending[:CHUNK]
            del pending[:CHUNK]
            root = fold_chunk(chunk)
            append_leaf(self.peaks, self.chunks, root)
            self.recorded.add_chunk(self.chunks, b"".join(chunk), root)
            self.chunks += 1
            if self.recorded.first is not None:  # not the recorded leaves: the exact check names it
                raise _NotVerbatim

    def other(self, line: bytes) -> None:
        """A line not hashed as it stands: read as the exact check reads it."""
        value = _parsed(line)
        if "uid" in value:  # an event spelled otherwise, or one past the checkpoint
            if self.count < self.size:
                raise _NotVerbatim
            self.count += 1
        elif "tree_leaves" in value and len(value) == 1:
            if self.recorded.add_record(value["tree_leaves"], 0):
                raise _NotVerbatim
        else:
            try:
                index, leaf = expired_leaf(value, 0)
            except ExportError as exc:
                raise _NotVerbatim from exc
            if self.count >= self.size:
                self.count += 1
                return
            if index != self.count:
                raise _NotVerbatim
            expired = self.expired
            expired[0] += 1
            expired[1] = expired[1] or self.count + 1
            expired[2] = self.count + 1
            self.add([leaf])


def verify_verbatim(lines: BinaryIO, checkpoint: Checkpoint, longest: int) -> VerifyReport | None:
    """The report of an export whose every event line is its leaf's bytes verbatim, if it
    verifies against ``checkpoint``; None for anything else (then run the exact check). Lines
    of ``longest`` bytes or more are refused, as the exact check does."""
    size = checkpoint.size
    leaves = _Leaves(size)
    try:
        for block in _blocks(lines, longest):
            # An event in RFC 8785 form starts {"action":, its first key in sorted order; an
            # expired line {"expired":, a record {"tree_leaves":. The rare lines that are not
            # events are read one by one; the runs of events between them hashed in one go.
            try:
                others = [i for i, line in enumerate(block) if line[2] != 97]  # 97: "a"
            except IndexError:  # a line of one or two bytes: no event
                return None
            others.append(len(block))
            at = 0
            for i in others:
                if at < i:
                    room = size - leaves.count
                    end = i if i - at <= room else at + max(room, 0)
                    if at < end:
                        leaves.add(_leaf_hashes(block[at:end]))
                    for line in block[end:i]:  # past the checkpoint: checked as JSON only
                        leaves.other(line)
                if i < len(block):
                    leaves.other(block[i])
                at = i + 1
    except _NotVerbatim:
        return None
    if leaves.count < size or tail_root(leaves.peaks, size >> CHUNK_LEVEL, leaves.pending) != checkpoint.root:
        return None
    expired = leaves.expired
    return VerifyReport(True, size, size, expired=(expired[0], expired[1], expired[2]))
