"""The Merkle tree of a SQLite log, kept in the events' own file and transaction.

Tables (created beside the store's, ``CREATE ... IF NOT EXISTS``):

- ``merkle_leaf``: ``position -> (workspace, idx, hash)``: which store position is which leaf,
  and the leaf's hash. Its highest position is the last store position the tree covers.
- ``merkle_node``: the complete subtrees on levels :data:`~.merkle.STRIDE`, 2 * STRIDE, ...:
  ``(workspace, level, idx) -> hash``. One row per 15 leaves; the levels between are folded
  from at most 8 stored hashes when a proof needs them (O(log n) reads per proof).
- ``merkle_tree``: per workspace, the size and the frontier (the complete subtrees that make
  up the whole tree, largest first), so an append reads one row, not the tree.

So a single durable publish writes three pages more than with the tree off (the leaf row, its
index entry, the tree row), and a batch ~1.07 rows per event.

:func:`extend_tree` runs inside the append's transaction (``write_rows``), so a crash at any
point leaves the tree and the events in agreement: both committed, or neither. Rows written
while the tree was off (``?tree=off``) are added by the next append that keeps it, in commit
order.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from json.encoder import encode_basestring as _q
from typing import TYPE_CHECKING, Any

from ..row import Row
from .capabilities import ProvableStore
from .jcs import canonical_json_text
from .merkle import STRIDE, Node, fold, stored_base

__all__ = ["create_tree_tables", "extend_tree", "SQLiteTree"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS merkle_node (workspace TEXT NOT NULL, level INTEGER NOT NULL, "
    "idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (workspace, level, idx)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS merkle_leaf (position INTEGER PRIMARY KEY, workspace TEXT NOT NULL, "
    "idx INTEGER NOT NULL, hash BLOB NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS merkle_leaf_idx ON merkle_leaf (workspace, idx)",
    "CREATE TABLE IF NOT EXISTS merkle_tree (workspace TEXT PRIMARY KEY, size INTEGER NOT NULL, "
    "frontier BLOB NOT NULL)",
)
# The first layout (before 0.2.0 was released) kept every level in merkle_node, the leaf hashes
# there too, and the cursor in a table of its own: brought to this one on open.
_UPGRADE = (
    "ALTER TABLE merkle_leaf ADD COLUMN hash BLOB",
    "UPDATE merkle_leaf SET hash = (SELECT n.hash FROM merkle_node AS n WHERE n.workspace = "
    "merkle_leaf.workspace AND n.level = 0 AND n.idx = merkle_leaf.idx)",
    f"DELETE FROM merkle_node WHERE level = 0 OR level % {int(STRIDE)} != 0",  # noqa: S608 (a constant)
    "DROP TABLE IF EXISTS merkle_cursor",
)
_COLUMNS = "uid, workspace, id, action, actor, targets, metadata, timestamp, version, position"
_CATCH_UP = 10_000  # rows per read when the tree catches up on a long stretch (bounded memory)
_AFTER_LAST_LEAF = (
    f"SELECT {_COLUMNS} FROM audit_log WHERE position > "  # noqa: S608 (constants only)
    "(SELECT coalesce(max(position), 0) FROM merkle_leaf) ORDER BY position LIMIT ?"
)
_AFTER_POSITION = f"SELECT {_COLUMNS} FROM audit_log WHERE position > ? ORDER BY position LIMIT ?"  # noqa: S608
_sha256 = hashlib.sha256


def create_tree_tables(conn: sqlite3.Connection) -> None:
    """Create the tree's tables in the caller's transaction (the store's migration)."""
    columns = {str(c[1]) for c in conn.execute("PRAGMA table_info(merkle_leaf)")}
    if columns and "hash" not in columns:
        for statement in _UPGRADE:
            conn.execute(statement)
    for statement in _SCHEMA:
        conn.execute(statement)


def extend_tree(conn: sqlite3.Connection) -> None:
    """Add every row committed after the tree's last leaf to its workspace's tree, in commit
    order, inside the caller's open transaction (the append's own)."""
    trees: dict[str, tuple[int, list[bytes]]] = {}
    nodes: list[tuple[str, int, int, bytes]] = []
    leaves: list[tuple[int, str, int, bytes]] = []
    after: int | None = None  # first: after the tree's last leaf, in the same statement
    while True:
        rows = conn.execute(
            _AFTER_LAST_LEAF if after is None else _AFTER_POSITION,
            (_CATCH_UP,) if after is None else (after, _CATCH_UP),
        ).fetchall()
        for raw in rows:
            workspace = raw[1]
            tree = trees.get(workspace)
            if tree is None:
                tree = trees[workspace] = _load(conn, workspace)
            size, frontier = tree
            digest = _sha256(b"\x00" + canonical_json_text(_wire(raw))).digest()
            leaves.append((raw[9], workspace, size, digest))
            # The frontier's trailing peaks close with this leaf (RFC 9162's append, inlined:
            # this loop runs once per event); only every STRIDE-th level is stored.
            index, level = size, 0
            while index & 1:
                digest = _sha256(b"\x01" + frontier.pop() + digest).digest()
                index, level = index >> 1, level + 1
                if level % STRIDE == 0:
                    nodes.append((workspace, level, index, digest))
            frontier.append(digest)
            trees[workspace] = (size + 1, frontier)
        if rows:
            after = rows[-1][9]
        if len(rows) < _CATCH_UP:
            break
    if not leaves:
        return
    conn.executemany("INSERT INTO merkle_leaf (position, workspace, idx, hash) VALUES (?, ?, ?, ?)", leaves)
    if nodes:
        conn.executemany("INSERT INTO merkle_node (workspace, level, idx, hash) VALUES (?, ?, ?, ?)", nodes)
    for workspace, (size, frontier) in trees.items():
        # UPDATE rewrites the row in place; INSERT OR REPLACE would touch the key's index page too.
        blob = b"".join(frontier)
        if not conn.execute(
            "UPDATE merkle_tree SET size = ?, frontier = ? WHERE workspace = ?", (size, blob, workspace)
        ).rowcount:
            conn.execute(
                "INSERT INTO merkle_tree (workspace, size, frontier) VALUES (?, ?, ?)",
                (workspace, size, blob),
            )


def _wire(raw: Any) -> str:
    """:func:`~auditbird.row.row_to_wire` of a raw ``_COLUMNS`` tuple, its keys already in RFC
    8785 order (the tests hold the leaves to ``leaf_data(row)``): ~1 µs less per appended event."""
    uid, workspace, id_, action, actor, targets, metadata, timestamp, version = raw[:9]
    return (
        f'{{"action":{_q(action)},"actor":{actor or "{}"},"id":{_q(id_)},"metadata":{metadata or "null"},'
        f'"targets":{targets or "[]"},"timestamp":{int(timestamp)},"uid":{_q(uid)},"version":{int(version)},'
        f'"workspace":{_q(workspace)}}}'
    )


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
        """Each node's stored hash, or the fold of the (at most ``2**(STRIDE-1)``) stored ones
        below it: one indexed range read per node."""
        out: dict[Node, bytes] = {}
        with self._reading() as conn:
            for level, idx in nodes:
                base, first, count = stored_base(level, idx)
                if base == 0:
                    sql = (
                        "SELECT hash FROM merkle_leaf WHERE workspace = ? AND idx >= ? AND idx < ? "
                        "ORDER BY idx"
                    )
                    params: tuple[object, ...] = (workspace, first, first + count)
                else:
                    sql = (
                        "SELECT hash FROM merkle_node WHERE workspace = ? AND level = ? AND idx >= ? "
                        "AND idx < ? ORDER BY idx"
                    )
                    params = (workspace, base, first, first + count)
                found = _read(conn, sql, params)
                if len(found) == count:  # fewer: the subtree is not complete, or the tree is damaged
                    out[(level, idx)] = fold([bytes(h) for (h,) in found])
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
                "SELECT idx, position, hash FROM merkle_leaf WHERE workspace = ? AND idx >= ? "
                "ORDER BY idx LIMIT ?",
                (workspace, start, limit),
            )
        return [(int(i), int(p), bytes(h)) for i, p, h in found]

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
