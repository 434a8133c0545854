"""The offline export (``auditbird checkpoint --export``) and its check (``verify --export``).

The export is NDJSON, one line per leaf of the tree, in tree order:

- a kept event: the RFC 8785 bytes its leaf hashes, so an untouched export is checked by
  hashing each line as it stands (:mod:`.export_verbatim`); any other spelling of the same event
  still verifies, through the exact check that re-canonicalises every line;
- an event retention removed: ``{"expired":true,"index":N,"leaf_hash":"<base64>"}``, its
  0-based leaf index and the leaf hash the tree kept, so the root can still be rebuilt.

An expired line proves nothing about the event it stands for (its data is gone); it only lets
the events around it be checked. Forging its hash changes the root, so that fails too.
"""

from __future__ import annotations

import hashlib
from typing import Any, BinaryIO

from ..retention import expired_leaves
from ..row import Row, row_to_wire
from ..stores.jcs import decode_canonical
from ..stores.merkle import append_leaf, leaf_data
from .checkpoint import Checkpoint
from .export_format import (
    BOM,
    EXPIRED_FORM,
    MAX_LINE_BYTES,
    ExportError,
    expired_leaf,
    expired_line,
    refuse_repeated_keys,
    too_deep,
)
from .export_record import CHUNK, CHUNK_LEVEL, Recorded, fold_chunk, record_line, tail_root
from .export_verbatim import verify_verbatim
from .proofs import log_workspace, provable_store
from .report import VerifyReport

__all__ = ["ExportError", "MAX_LINE_BYTES", "EXPIRED_FORM", "verify_export", "write_export"]

_sha256 = hashlib.sha256


def verify_export(lines: BinaryIO, checkpoint: Checkpoint) -> VerifyReport:
    """Check an NDJSON export (``auditbird checkpoint --export``, opened in binary mode) against
    a signed checkpoint, offline. Raises :class:`ExportError` for input that is not an export.

    First the fast check (:mod:`.export_verbatim`): each event line hashed as it stands, which
    accepts an untouched export of ``checkpoint --export`` and nothing the check below would
    not. Anything else (another spelling, a change, bad input) is read again from the start
    (a stream that cannot seek is read once, this way): each event line is parsed (to refuse
    what is not an exported event) and its RFC 8785 bytes hashed as its leaf; an expired line
    gives its leaf hash as is. Leaves are folded a complete chunk at a time."""
    start = lines.tell() if lines.seekable() else None
    if start is not None:
        report = verify_verbatim(lines, checkpoint, MAX_LINE_BYTES)
        if report is not None:
            return report
        lines.seek(start)
    return _verify_exact(lines, checkpoint)


def _verify_exact(lines: BinaryIO, checkpoint: Checkpoint) -> VerifyReport:
    size = checkpoint.size
    peaks: list[bytes] = []  # the frontier of complete chunks of CHUNK leaves
    pending: list[bytes] = []  # the leaves of the chunk being read
    count = 0
    expired = [0, 0, 0]  # count, first #, last #
    recorded = Recorded(size)
    after = b""  # the first leaf past the checkpoint (a look-ahead for naming the last)
    readline = lines.readline
    number = 0
    while line := readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES:  # read no further: memory stays bounded
            raise ExportError(f"line {number} is longer than {MAX_LINE_BYTES} bytes: not an event export")
        if number == 1 and line.startswith(BOM):  # not part of the JSON (some editors add it)
            line = line[len(BOM) :]
        try:
            event, data = decode_canonical(line)
        except ValueError as exc:
            if not line.strip():
                continue
            raise ExportError(
                f"line {number} is not JSON ({exc}): pass an NDJSON export (auditbird checkpoint --export)"
            ) from exc
        except RecursionError:  # the parsers' depth limit: a clean error, not a traceback
            raise too_deep(number) from None
        refuse_repeated_keys(line, data, number)
        if type(event) is not dict:
            raise ExportError(f"line {number} is not an exported event (a JSON object with a uid)")
        if "uid" in event:
            leaf = _sha256(b"\x00" + data).digest()
        elif "tree_leaves" in event and len(event) == 1:
            bad = recorded.add_record(event["tree_leaves"], number)
            if bad:
                raise ExportError(f"line {number} is a malformed record of the tree's leaves: {bad}")
            continue
        else:
            index, leaf = expired_leaf(event, number)
            if count < size:
                if index != count:
                    return VerifyReport(
                        False,
                        count,
                        size,
                        count + 1,
                        "reordered",
                        f"line {number} marks leaf #{index + 1} as expired but stands at #{count + 1}: "
                        "lines were moved, removed or inserted",
                    )
                expired[0] += 1
                expired[1] = expired[1] or count + 1
                expired[2] = count + 1
        if count == size:
            after = leaf
        if count < size:
            pending.append(leaf)
            if len(pending) == CHUNK:
                root = fold_chunk(pending)
                append_leaf(peaks, count >> CHUNK_LEVEL, root)
                recorded.add_chunk(count >> CHUNK_LEVEL, b"".join(pending), root)
                pending = []
        count += 1
    if count >= size and tail_root(peaks, size >> CHUNK_LEVEL, pending) == checkpoint.root:
        return VerifyReport(True, size, size, expired=(expired[0], expired[1], expired[2]))
    if recorded.finish(pending, size, after) == checkpoint.root and recorded.first is not None:
        # The tree's record of the leaves is the signed one: where the lines part from it is
        # where the export was altered.
        return recorded.report(size, count)
    if count < size:
        raise ExportError(
            f"the export holds {count} events; the checkpoint covers {size}: wrong or truncated export"
        )
    return VerifyReport(
        False,
        0,
        size,
        None,
        "changed",
        f"the export's first {size} events do not hash to the checkpoint's root: an event (or an "
        "expired leaf's hash) was changed, removed, inserted or moved (the export carries no "
        "record of the tree's leaves that the checkpoint vouches for, so where is unknown)",
    )


def write_export(log_or_store: Any, size: int, out: BinaryIO, *, workspace: str | None = None) -> int:
    """Write the workspace's first ``size`` leaves to ``out`` as NDJSON: each kept event as the
    RFC 8785 bytes its leaf hashes (so a reader can check a line with SHA-256 alone), each event
    retention removed as an expired line carrying its leaf hash, and before each chunk of
    leaves the tree's record of their hashes (:mod:`.export_record`). Returns the leaf lines
    written.

    The rows are exported as they stand: a row deleted or added behind auditbird's back is left
    out or written, for the verifier to find (and, by the record, to name)."""
    store = provable_store(log_or_store)
    ws = log_workspace(log_or_store, workspace)
    gone = expired_leaves(store, ws)
    next_gone = next(gone, None)
    written = 0
    rows = store.iter_rows(ws)
    row: Row | None = next(rows, None)
    for start in range(0, size, CHUNK):
        leaves = store.tree_leaves(ws, start, min(CHUNK, size - start))
        if not leaves:
            break
        out.write(record_line(start, b"".join(digest for _, _, digest in leaves)))
        for index, position, digest in leaves:
            while row is not None and int(row.position or 0) < position:  # a row the tree lacks
                out.write(_line(row))
                written, row = written + 1, next(rows, None)
            if row is not None and int(row.position or 0) == position:
                out.write(_line(row))
                written, row = written + 1, next(rows, None)
                continue
            while next_gone is not None and next_gone < index:
                next_gone = next(gone, None)
            if next_gone == index:
                out.write(expired_line(index, digest))
                written += 1
    return written


def _line(row: Row) -> bytes:
    """The row's RFC 8785 bytes and a newline; a row whose JSON nests too deep to canonicalise
    (edited behind auditbird's back: the parsers give up after ~1,000 levels, in bounded time
    and memory) as it stands, like any other altered row, for the verifier to name."""
    try:
        return leaf_data(row) + b"\n"
    except RecursionError:
        return row_to_wire(row).encode() + b"\n"
