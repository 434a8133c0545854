"""The Merkle tree of a SQLite log, kept in the events' own file and transaction.

Tables (created beside the store's, ``CREATE ... IF NOT EXISTS``):

- ``merkle_leaf``: ``position -> (workspace, idx, hash)``: which store position is which leaf,
  and the leaf's hash. Its highest position is the last store position the tree covers; a
  workspace's highest ``idx`` + 1 is its tree size.
- ``merkle_node``: the complete subtrees on levels :data:`~.merkle.STRIDE`, 2 * STRIDE, ...:
  ``(workspace, level, idx) -> hash``. One row per 15 leaves; the levels between are folded
  from at most 8 stored hashes when a proof needs them (O(log n) reads per proof).

Appending needs each workspace's *frontier* (the peaks: the complete subtrees that make up
the tree). The writer keeps it in memory (:class:`TreeCursor`) and checks it, inside the
write transaction, against the last leaf (one read of the leaf table's last row): a leaf
added by anyone else (another process, ``serve --workers 2``, ``auditbird.emit``, retention)
changes that row, and the frontier is then reloaded from the stored peaks (one read). So a
single durable publish writes two pages more than with the tree off (the leaf row and its
index entry) and runs two statements more (that check and the leaf insert); a batch ~1.07
rows per event. The writer also hands over the rows it just wrote (:data:`Written`), so they
are not read back.

:func:`extend_tree` runs inside the append's transaction, so a crash at any point leaves the
tree and the events in agreement: both committed, or neither. Rows written while the tree was
off (``?tree=off``) are added by the next append that keeps it, in commit order.

Files written before 0.3 also kept a ``merkle_tree`` row per workspace (size and frontier),
rewritten by every commit; it is emptied on open and no longer read or written.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from json.encoder import encode_basestring as _q
from typing import TYPE_CHECKING, Any

from .._errors import StoreUnavailable
from ..row import Row
from .capabilities import ProvableStore
from .jcs import canonical_json_text
from .merkle import STRIDE, Node, fold, stored_base

__all__ = [
    "create_tree_tables",
    "extend_tree",
    "leaves_between",
    "leaves_to_expire",
    "SQLiteTree",
    "TreeCursor",
    "Written",
]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS merkle_node (workspace TEXT NOT NULL, level INTEGER NOT NULL, "
    "idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (workspace, level, idx)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS merkle_leaf (position INTEGER PRIMARY KEY, workspace TEXT NOT NULL, "
    "idx INTEGER NOT NULL, hash BLOB NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS merkle_leaf_idx ON merkle_leaf (workspace, idx)",
    # The previous layout's per-workspace (size, frontier), rewritten by every commit: kept,
    # always empty (see _retire_tree_rows), so a previous release never reads a stale one.
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
_AFTER_POSITION = f"SELECT {_COLUMNS} FROM audit_log WHERE position > ? ORDER BY position LIMIT ?"  # noqa: S608
_LAST_LEAF = "SELECT position, hash FROM merkle_leaf ORDER BY position DESC LIMIT 1"
_INSERT_NODE = "INSERT INTO merkle_node (workspace, level, idx, hash) VALUES (?, ?, ?, ?)"
_INSERT_LEAF = "INSERT INTO merkle_leaf (position, workspace, idx, hash) VALUES (?, ?, ?, ?)"
_sha256 = hashlib.sha256

# What a writer just inserted, so the tree need not read it back: ``(first position, rows)``
# segments, each row a :class:`Row` (or a tuple of its first nine fields), position after position.
Written = list[tuple[int, Sequence[Any]]]
_Tree = tuple[int, list[bytes]]  # (size, frontier: the peaks' hashes, largest first)
_LeafKey = tuple[int, bytes]  # the last leaf's (position, hash): what the cursor is checked by


def create_tree_tables(conn: sqlite3.Connection) -> None:
    """Create the tree's tables in the caller's transaction (the store's migration)."""
    columns = {str(c[1]) for c in conn.execute("PRAGMA table_info(merkle_leaf)")}
    if columns and "hash" not in columns:
        for statement in _UPGRADE:
            conn.execute(statement)
    for statement in _SCHEMA:
        conn.execute(statement)
    _retire_tree_rows(conn)


def _retire_tree_rows(conn: sqlite3.Connection) -> None:
    """Empty the previous layout's ``merkle_tree`` (no longer kept up to date). A previous
    release opening this file then reads a tree of size 0 and refuses to append to it (the
    idx of its "first" leaf is taken: the append fails, nothing is written), instead of
    extending a stale frontier."""
    if conn.execute("SELECT 1 FROM merkle_tree LIMIT 1").fetchone() is not None:
        conn.execute("DELETE FROM merkle_tree")


class TreeCursor:
    """A writer's in-memory frontiers, valid while the file's last leaf is the one it knows.

    :func:`extend_tree` stages its changes here; the writer calls :meth:`committed` once its
    transaction committed, :meth:`discard` if it did not (a rolled-back append never leaves
    a frontier that the file does not hold)."""

    __slots__ = ("last", "trees", "_pending")

    def __init__(self) -> None:
        self.last: _LeafKey | None = None
        self.trees: dict[str, _Tree] = {}
        self._pending: tuple[_LeafKey, dict[str, _Tree]] | None = None

    def committed(self) -> None:
        if self._pending is not None:
            self.last, changed = self._pending
            self.trees.update(changed)
            self._pending = None

    def discard(self) -> None:
        self.last, self.trees, self._pending = None, {}, None


def extend_tree(
    conn: sqlite3.Connection, cursor: TreeCursor | None = None, written: Written | None = None
) -> None:
    """Add every row committed after the tree's last leaf to its workspace's tree, in commit
    order, inside the caller's open transaction (the append's own).

    ``written``: the rows the caller just inserted; used as they are when they directly follow
    the last leaf (else some rows were written without the tree, and every row after the last
    leaf is read). ``cursor``: the caller's frontiers, used when the last leaf is the one it
    last saw (else reloaded from the stored peaks)."""
    found = conn.execute(_LAST_LEAF).fetchone()
    last: _LeafKey = (int(found[0]), bytes(found[1])) if found else (0, b"")
    known: dict[str, _Tree] = {}
    if cursor is not None:
        if cursor.last == last:
            known = cursor.trees
        else:  # someone else appended (or a transaction of ours rolled back): reload
            cursor.trees = {}
    changed: dict[str, _Tree] = {}
    nodes: list[tuple[str, int, int, bytes]] = []
    leaves: list[tuple[int, str, int, bytes]] = []
    for position, raw in _rows_after(conn, last[0], written):
        workspace = raw[1]
        tree = changed.get(workspace)
        if tree is None:
            base = known.get(workspace)
            tree = (base[0], list(base[1])) if base is not None else _load(conn, workspace)
        size, frontier = tree
        digest = _sha256(b"\x00" + canonical_json_text(_wire(raw))).digest()
        leaves.append((position, workspace, size, digest))
        # The frontier's trailing peaks close with this leaf (RFC 9162's append, inlined:
        # this loop runs once per event); only every STRIDE-th level is stored.
        index, level = size, 0
        while index & 1:
            digest = _sha256(b"\x01" + frontier.pop() + digest).digest()
            index, level = index >> 1, level + 1
            if level % STRIDE == 0:
                nodes.append((workspace, level, index, digest))
        frontier.append(digest)
        changed[workspace] = (size + 1, frontier)
    if leaves:
        if len(leaves) == 1:
            conn.execute(_INSERT_LEAF, leaves[0])
        else:
            conn.executemany(_INSERT_LEAF, leaves)
        if nodes:
            conn.executemany(_INSERT_NODE, nodes)
        last = (leaves[-1][0], leaves[-1][3])
    if cursor is not None:
        cursor._pending = (last, changed)


def _rows_after(conn: sqlite3.Connection, after: int, written: Written | None) -> Iterator[tuple[int, Any]]:
    """``(position, raw row)`` of every row after position ``after``, in commit order: the
    writer's own when they start right there, else read in bounded pages."""
    if written and written[0][0] == after + 1:
        expected = after + 1
        for first, rows in written:
            if first != expected:  # not one run of positions: never guess, read them
                break
            expected += len(rows)
        else:
            for first, rows in written:
                yield from enumerate(rows, first)
            return
    while True:
        rows = conn.execute(_AFTER_POSITION, (after, _CATCH_UP)).fetchall()
        for raw in rows:
            yield raw[9], raw
        if len(rows) < _CATCH_UP:
            return
        after = rows[-1][9]


def _wire(raw: Any) -> str:
    """:func:`~auditbird.row.row_to_wire` of a raw ``_COLUMNS`` tuple, its keys already in RFC
    8785 order (the tests hold the leaves to ``leaf_data(row)``): ~1 µs less per appended event."""
    uid, workspace, id_, action, actor, targets, metadata, timestamp, version = raw[:9]
    return (
        f'{{"action":{_q(action)},"actor":{actor or "{}"},"id":{_q(id_)},"metadata":{metadata or "null"},'
        f'"targets":{targets or "[]"},"timestamp":{int(timestamp)},"uid":{_q(uid)},"version":{int(version)},'
        f'"workspace":{_q(workspace)}}}'
    )


def _peaks(size: int) -> list[Node]:
    """The complete subtrees that make up a tree of ``size`` leaves, largest first."""
    out: list[Node] = []
    lo = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, lo >> level))
            lo += 1 << level
    return out


def _load(conn: sqlite3.Connection, workspace: str) -> _Tree:
    """A workspace's size and frontier from the stored tree: its size is its highest leaf idx
    + 1, each peak one stored node or the fold of at most ``2**(STRIDE-1)`` (one read)."""
    (top,) = conn.execute("SELECT max(idx) FROM merkle_leaf WHERE workspace = ?", (workspace,)).fetchone()
    if top is None:
        return 0, []
    size = int(top) + 1
    peaks = _peaks(size)
    hashes = node_hashes(conn, workspace, peaks)
    if len(hashes) != len(peaks):
        raise StoreUnavailable(
            f"the Merkle tree of workspace {workspace!r} lacks stored nodes under its frontier "
            f"(size {size}): the file was modified outside auditbird; run `auditbird verify` on it"
        )
    return size, [hashes[p] for p in peaks]


def node_hashes(conn: sqlite3.Connection, workspace: str, nodes: Sequence[Node]) -> dict[Node, bytes]:
    """Each complete node's hash (stored, or folded from the stored ones below it), in one
    statement; a node missing any stored hash is left out."""
    parts: list[str] = []
    params: list[object] = []
    spans: list[tuple[Node, int]] = []
    for k, (level, idx) in enumerate(nodes):
        base, first, count = stored_base(level, idx)
        if base == 0:
            parts.append("SELECT ?, idx, hash FROM merkle_leaf WHERE workspace = ? AND idx >= ? AND idx < ?")
            params += (k, workspace, first, first + count)
        else:
            parts.append(
                "SELECT ?, idx, hash FROM merkle_node WHERE workspace = ? AND level = ? "
                "AND idx >= ? AND idx < ?"
            )
            params += (k, workspace, base, first, first + count)
        spans.append(((level, idx), count))
    if not parts:
        return {}
    found: dict[int, list[tuple[int, bytes]]] = {}
    for k, i, h in conn.execute(" UNION ALL ".join(parts), params):
        found.setdefault(int(k), []).append((int(i), bytes(h)))
    out: dict[Node, bytes] = {}
    for k, (node, count) in enumerate(spans):
        got = sorted(found.get(k, ()))
        if len(got) == count:  # fewer: the subtree is not complete, or the tree is damaged
            out[node] = fold([h for _, h in got])
    return out


def leaves_between(conn: sqlite3.Connection, lo: int, hi: int) -> list[tuple[int, str, int, bytes]]:
    """``(position, workspace, idx, hash)`` of the leaves of store positions ``lo`` to ``hi``."""
    found = _read(
        conn,
        "SELECT position, workspace, idx, hash FROM merkle_leaf WHERE position BETWEEN ? AND ?",
        (lo, hi),
    )
    return [(int(p), str(w), int(i), bytes(h)) for p, w, i, h in found]


def leaves_to_expire(
    conn: sqlite3.Connection,
    workspace: str,
    cutoff: int,
    keep_action: str,
    keep_actor_id: str | None,
    limit: int,
) -> list[tuple[int, int, int]]:
    """``(position, timestamp, leaf idx)`` of the oldest events of ``workspace`` before
    ``cutoff`` (ms), oldest first, at most ``limit``, leaving out those of ``keep_action`` by
    ``keep_actor_id`` (retention's own records). Rows the tree does not cover yet are left out:
    call :func:`extend_tree` first."""
    found = conn.execute(
        "SELECT a.position, a.timestamp, l.idx FROM audit_log AS a "
        "JOIN merkle_leaf AS l ON l.position = a.position "
        "WHERE a.workspace = ? AND a.timestamp < ? "
        "AND NOT (a.action = ? AND a.actor_id IS ?) ORDER BY a.timestamp LIMIT ?",
        (workspace, cutoff, keep_action, keep_actor_id, limit),
    ).fetchall()
    return [(int(p), int(t), int(i)) for p, t, i in found]


class SQLiteTree(ProvableStore):
    """The provable tier of the SQLite store (a mixin: ``class SQLiteStore(SQLiteTree, ...)``).
    Reads run on the store's reader connections, beside the writer."""

    if TYPE_CHECKING:

        def _reading(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def tree_size(self, workspace: str) -> int:
        with self._reading() as conn:
            found = _read(conn, "SELECT max(idx) FROM merkle_leaf WHERE workspace = ?", (workspace,))
        return int(found[0][0]) + 1 if found and found[0][0] is not None else 0

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
