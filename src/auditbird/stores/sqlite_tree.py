"""The Merkle tree of a SQLite log, kept in the events' own file and transaction.

Tables (created beside the store's, ``CREATE ... IF NOT EXISTS``):

- ``merkle_node``: every complete subtree hash, ``(workspace, level, idx) -> hash``; level 0
  holds the leaf hashes. O(1) amortised writes per event, O(log n) reads per proof.
- ``merkle_leaf``: ``position -> (workspace, idx)``: which store position is which leaf.
- ``merkle_tree``: per workspace, the size and the frontier (the complete subtrees that make
  up the whole tree, largest first), so an append reads one row, not the tree.
- ``merkle_cursor``: the last store position the tree covers.

:func:`extend_tree` runs inside the append's transaction (``write_rows``), so a crash at any
point leaves the tree and the events in agreement: both committed, or neither. Rows written
while the tree was off (``?tree=off``) are added by the next append that keeps it, in commit
order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..row import Row
from .capabilities import ProvableStore
from .merkle import Node, append_leaf, leaf_data, leaf_hash

__all__ = ["create_tree_tables", "extend_tree", "SQLiteTree"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS merkle_node (workspace TEXT NOT NULL, level INTEGER NOT NULL, "
    "idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (workspace, level, idx)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS merkle_leaf (position INTEGER PRIMARY KEY, workspace TEXT NOT NULL, "
    "idx INTEGER NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS merkle_leaf_idx ON merkle_leaf (workspace, idx)",
    "CREATE TABLE IF NOT EXISTS merkle_tree (workspace TEXT PRIMARY KEY, size INTEGER NOT NULL, "
    "frontier BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS merkle_cursor (one INTEGER PRIMARY KEY CHECK (one = 1), "
    "position INTEGER NOT NULL)",
)
_COLUMNS = "uid, workspace, id, action, actor, targets, metadata, timestamp, version, position"
_CATCH_UP = 10_000  # rows per read when the tree catches up on a long stretch (bounded memory)


def create_tree_tables(conn: sqlite3.Connection) -> None:
    """Create the tree's tables in the caller's transaction (the store's migration)."""
    for statement in _SCHEMA:
        conn.execute(statement)


def extend_tree(conn: sqlite3.Connection) -> None:
    """Add every row committed after the tree's cursor to its workspace's tree, in commit
    order, inside the caller's open transaction (the append's own)."""
    found = conn.execute("SELECT position FROM merkle_cursor WHERE one = 1").fetchone()
    after = int(found[0]) if found else 0
    trees: dict[str, tuple[int, list[bytes]]] = {}
    nodes: list[tuple[str, int, int, bytes]] = []
    leaves: list[tuple[int, str, int]] = []
    while True:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM audit_log WHERE position > ? ORDER BY position LIMIT ?",  # noqa: S608
            (after, _CATCH_UP),
        ).fetchall()
        for raw in rows:
            row = Row._make(raw)
            if row.workspace not in trees:
                trees[row.workspace] = _load(conn, row.workspace)
            size, frontier = trees[row.workspace]
            for level, idx, digest in append_leaf(frontier, size, leaf_hash(leaf_data(row))):
                nodes.append((row.workspace, level, idx, digest))
            leaves.append((int(raw[9]), row.workspace, size))
            trees[row.workspace] = (size + 1, frontier)
        if rows:
            after = int(rows[-1][9])
        if len(rows) < _CATCH_UP:
            break
    if not leaves:
        return
    conn.executemany("INSERT INTO merkle_node (workspace, level, idx, hash) VALUES (?, ?, ?, ?)", nodes)
    conn.executemany("INSERT INTO merkle_leaf (position, workspace, idx) VALUES (?, ?, ?)", leaves)
    conn.executemany(
        "INSERT OR REPLACE INTO merkle_tree (workspace, size, frontier) VALUES (?, ?, ?)",
        [(ws, size, b"".join(frontier)) for ws, (size, frontier) in trees.items()],
    )
    conn.execute("INSERT OR REPLACE INTO merkle_cursor (one, position) VALUES (1, ?)", (after,))


def _load(conn: sqlite3.Connection, workspace: str) -> tuple[int, list[bytes]]:
    found = conn.execute(
        "SELECT size, frontier FROM merkle_tree WHERE workspace = ?", (workspace,)
    ).fetchone()
    if found is None:
        return 0, []
    blob = bytes(found[1])
    return int(found[0]), [blob[i : i + 32] for i in range(0, len(blob), 32)]


class SQLiteTree(ProvableStore):
    """The provable tier of the SQLite store (a mixin: ``class SQLiteStore(SQLiteTree, ...)``).
    Reads run on the store's reader connections, beside the writer."""

    if TYPE_CHECKING:

        def _reading(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def tree_size(self, workspace: str) -> int:
        with self._reading() as conn:
            found = _read(conn, "SELECT size FROM merkle_tree WHERE workspace = ?", (workspace,))
        return int(found[0][0]) if found else 0

    def tree_nodes(self, workspace: str, nodes: Sequence[Node]) -> dict[Node, bytes]:
        out: dict[Node, bytes] = {}
        with self._reading() as conn:
            for level, idx in nodes:
                found = _read(
                    conn,
                    "SELECT hash FROM merkle_node WHERE workspace = ? AND level = ? AND idx = ?",
                    (workspace, level, idx),
                )
                if found:
                    out[(level, idx)] = bytes(found[0][0])
        return out

    def tree_index(self, workspace: str, uid: str) -> int | None:
        with self._reading() as conn:
            found = _read(
                conn,
                "SELECT l.idx FROM audit_log AS a JOIN merkle_leaf AS l ON l.position = a.position "
                "WHERE a.workspace = ? AND a.uid = ?",
                (workspace, uid),
            )
        return int(found[0][0]) if found else None

    def tree_leaves(self, workspace: str, start: int, limit: int) -> list[tuple[int, int, bytes]]:
        """``(idx, position, leaf_hash)`` of leaves ``start`` onwards, in tree order."""
        with self._reading() as conn:
            found = _read(
                conn,
                "SELECT n.idx, l.position, n.hash FROM merkle_node AS n "
                "LEFT JOIN merkle_leaf AS l ON l.workspace = n.workspace AND l.idx = n.idx "
                "WHERE n.workspace = ? AND n.level = 0 AND n.idx >= ? ORDER BY n.idx LIMIT ?",
                (workspace, start, limit),
            )
        return [(int(i), -1 if p is None else int(p), bytes(h)) for i, p, h in found]

    def iter_rows(self, workspace: str, batch: int = 5_000) -> Iterator[Row]:
        """The workspace's stored rows in commit order, in pages (constant memory)."""
        after = 0
        while True:
            with self._reading() as conn:
                found = _read(
                    conn,
                    f"SELECT {_COLUMNS} FROM audit_log WHERE workspace = ? AND position > ? "  # noqa: S608
                    "ORDER BY position LIMIT ?",
                    (workspace, after, batch),
                )
            for raw in found:
                yield Row._make(raw)
            if len(found) < batch:
                return
            after = int(found[-1][9])


def _read(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> list[Any]:
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a log written before the tree existed, not yet opened to write
            return []
        raise
