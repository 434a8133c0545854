"""What each step of the tree costs a single durable publish where it runs (issue 14).

A single publish runs the tree's code once between two fsyncs, on cold caches: there a call
costs several times what a warm ``timeit`` loop shows, so the steps are measured in place.
Each variant replaces the writer's ``extend_tree`` with the first steps of it only, and runs
the alternating tree-on / tree-off loop of ``bench.merkle`` (both orders, turn about); the
p50 difference on minus off is what those steps cost. Steps, cumulative:

- ``nothing``: the tree's bookkeeping around the call only (should read ~0);
- ``leaf row``: one ``merkle_leaf`` INSERT of a constant hash (the statement, the B-tree page,
  its WAL frame);
- ``+ data_version``: the writer's ``PRAGMA data_version`` read;
- ``+ leaf bytes``: :func:`auditbird.stores.merkle.leaf_data`;
- ``+ SHA-256 (CPython)`` / ``+ SHA-256 (OpenSSL)``: the leaf's hash, by the interpreter's own
  module or by OpenSSL's (``hashlib.sha256``);
- ``writer``: the writer as shipped (its frontier, the stored nodes, the cursor).

Variants not the writer store wrong hashes: only their times mean anything.

    .venv/bin/python -m bench.tree_cold [--rounds 800] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import auditbird.stores.sqlite as sqlite_store
from auditbird.stores import sqlite_tree
from auditbird.stores.merkle import leaf_data

from .machine import describe
from .merkle import _side_by_side

_WRITER = sqlite_store.extend_tree
_CONSTANT = bytearray(32)
_INSERT = sqlite_tree._INSERT_LEAF


def _steps(version: bool, data: bool, sha: Callable[[bytes], Any] | None) -> Callable[..., None]:
    def extend(conn: Any, cursor: Any = None, written: Any = None) -> None:
        if version:
            conn.execute("PRAGMA data_version").fetchone()
        position, rows = written[0]
        digest: Any = _CONSTANT
        if data:
            payload = leaf_data(rows[0])
            digest = bytearray(sha(b"\x00" + payload).digest()) if sha else bytearray(payload[:32])
        conn.execute(_INSERT, (position, rows[0][1], position, digest))

    return extend


def _nothing(conn: Any, cursor: Any = None, written: Any = None) -> None:
    return None


VARIANTS: dict[str, Callable[..., None]] = {
    "nothing": _nothing,
    "leaf row": _steps(False, False, None),
    "+ data_version": _steps(True, False, None),
    "+ leaf bytes": _steps(True, True, None),
    "+ SHA-256 (CPython)": _steps(True, True, sqlite_tree._one_sha256),
    "+ SHA-256 (OpenSSL)": _steps(True, True, hashlib.sha256),
    "writer": _WRITER,
}


def _difference(d: Path, name: str, rounds: int, on_first: bool) -> float:
    """p50 seconds of a tree-on publish through ``name``'s steps minus a tree-off publish
    (``bench.merkle``'s side-by-side loop, one order throughout)."""
    sqlite_store.extend_tree = VARIANTS[name]
    try:
        if on_first:
            on, off = _side_by_side(d, f"{name} on first", rounds, 1, alternate=False)
        else:
            off, on = _side_by_side(d, f"{name} off first", rounds, 1, tree=(False, True), alternate=False)
    finally:
        sqlite_store.extend_tree = _WRITER
    return on - off


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(describe())
    found: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name in VARIANTS:  # variants turn about, so machine drift spreads over all
                for on_first in (True, False):
                    found[name].append(_difference(Path(tmp) / str(repeat), name, args.rounds, on_first))
    print(f"single durable publish, tree on minus off, p50 (mean of {args.repeats * 2} runs, both orders):")
    for name, diffs in found.items():
        print(f"  {name:22s} {statistics.mean(diffs) * 1e6:6.1f} us")


if __name__ == "__main__":
    main()
