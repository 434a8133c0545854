"""The Merkle tree of a SQLite log, kept in the events' own file and transaction.

Tables (created beside the store's, ``CREATE ... IF NOT EXISTS``):

- ``merkle_leaf``: ``(workspace, idx) -> (position, hash)``: each leaf's hash and the store
  position of its row, in one B-tree (``WITHOUT ROWID``). A workspace's highest ``idx`` + 1 is
  its tree size; within a workspace positions grow with idx, so a position's leaf is found by
  a search (:func:`~.sqlite_tree_read.leaf_from`). Rows the tree does not cover yet are the
  newest ones (written with the tree off).
- ``merkle_node``: the complete subtrees on levels :data:`~.merkle.STRIDE`, 2 * STRIDE, ...:
  ``(workspace, level, idx) -> hash``. One row per 15 leaves; the levels between are folded
  from at most 8 stored hashes when a proof needs them (O(log n) reads per proof).

Appending needs each workspace's *frontier*, kept as *groups*: per stored level, the hashes
after that level's last complete stored node (fewer than ``2**STRIDE``). A leaf joins the
level-0 group; a group that fills folds into the next stored level's node (15 hashes in one
warm loop, once per 16 leaves), so most publishes hash only their leaf. The writer keeps
the groups in memory (:class:`TreeCursor`) and uses them while no other
connection has committed to the file since its own last append (SQLite's ``PRAGMA
data_version``, read under the write lock) and its new rows directly follow the last leaf it
knows: a leaf added by anyone else (another process, ``serve --workers 2``,
``auditbird.emit``, a hand edit) fails the first, rows added on its own connection outside
the cursor (retention's record) the second. Otherwise it finds the last row the tree covers,
and keeps a cached frontier only where its workspace's tree still has the size it knows
(else one read of the stored groups). The writer also hands over the rows it just wrote
(:data:`Written`), so they are not read back. So a single durable publish runs two cheap
statements more than with the tree off (the version and the leaf's insert) and writes one
page more (the leaf's); a batch ~1.07 rows per event.

Earlier 0.2.0 development builds kept the leaves keyed by position with a ``(workspace, idx)``
index beside (two B-trees, two pages a commit): copied into the one B-tree on open.

:func:`extend_tree` runs inside the append's transaction, so a crash at any point leaves the
tree and the events in agreement: both committed, or neither. Rows written while the tree was
off (``?tree=off``) are added by the next append that keeps it, in commit order.

Files written by earlier 0.2.0 development builds also kept a ``merkle_tree`` row per
workspace (size and frontier), rewritten by every commit: emptied on open, then never read or
written (0.1.0 had no tree: its writers append as ``?tree=off`` does, and are caught up).
"""

from __future__ import annotations

import hashlib
import importlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

from .._errors import StoreUnavailable
from .merkle import STRIDE, fold, leaf_data, leaf_data_many
from .sqlite_tree_read import (
    COLUMNS,
    TOP_LEAF,
    SQLiteTree,
    leaves_between,
    leaves_to_expire,
    node_hashes,
    size_of,
)

__all__ = [
    "create_tree_tables",
    "extend_tree",
    "leaves_between",
    "leaves_to_expire",
    "SQLiteTree",
    "TreeCursor",
    "Written",
]

# One B-tree, keyed as proofs and the writer read it: a leaf costs a commit one page, not two
# (a rowid table keyed by position and a (workspace, idx) index). Store position -> leaf goes
# through the audit_log row's workspace and a search (:func:`.sqlite_tree_read.leaf_from`):
# within a workspace, positions grow with idx.
_LEAF_TABLE = (
    "CREATE TABLE IF NOT EXISTS {name} (workspace TEXT NOT NULL, idx INTEGER NOT NULL, "
    "position INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (workspace, idx)) WITHOUT ROWID"
)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS merkle_node (workspace TEXT NOT NULL, level INTEGER NOT NULL, "
    "idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (workspace, level, idx)) WITHOUT ROWID",
    _LEAF_TABLE.format(name="merkle_leaf"),
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
# The second (0.2.0 development builds until 2026-12-02): a rowid table keyed by position, with
# a unique (workspace, idx) index: copied into the one B-tree (one pass, once).
_TO_ONE_BTREE = (
    _LEAF_TABLE.format(name="merkle_leaf_one"),
    "INSERT INTO merkle_leaf_one (workspace, idx, position, hash) "
    "SELECT workspace, idx, position, hash FROM merkle_leaf",
    "DROP TABLE merkle_leaf",
    "ALTER TABLE merkle_leaf_one RENAME TO merkle_leaf",
)
_CATCH_UP = 10_000  # rows per read when the tree catches up on a long stretch (bounded memory)
_AFTER_POSITION = f"SELECT {COLUMNS} FROM audit_log WHERE position > ? ORDER BY position LIMIT ?"  # noqa: S608
_NEWEST_ROWS = "SELECT position, workspace FROM audit_log WHERE position < ? ORDER BY position DESC LIMIT ?"
_MAX_POSITION = 2**63 - 1
_INSERT_NODE = "INSERT INTO merkle_node (workspace, level, idx, hash) VALUES (?, ?, ?, ?)"
_INSERT_LEAF = "INSERT INTO merkle_leaf (position, workspace, idx, hash) VALUES (?, ?, ?, ?)"
_INSERT_LEAVES = "INSERT INTO merkle_leaf (position, workspace, idx, hash) VALUES "
_sha256 = hashlib.sha256  # OpenSSL's: the fastest for the many hashes of a batch (SHA-NI)


def _small_sha256() -> Callable[[bytes], Any]:
    """CPython's own SHA-256 (``_sha2`` from 3.12, ``_sha256`` before), for the single publish:
    slower than OpenSSL's in a warm loop, but a lone hash between two fsyncs runs on cold
    caches, where OpenSSL's EVP set-up (provider look-up, locks, allocations) cost ~13 us a
    hash against ~1 us for this one (measured, bench/RESULTS.md). Same digests: RFC 6962's
    test vectors and Go's tlog check every tree in the tests."""
    for name in ("_sha2", "_sha256"):
        try:
            return importlib.import_module(name).sha256  # type: ignore[no-any-return, unused-ignore]
        except (ImportError, AttributeError):
            continue
    return _sha256  # an interpreter built without them


_one_sha256 = _small_sha256()

# What a writer just inserted, so the tree need not read it back: ``(first position, rows)``
# segments, each row a :class:`Row` (or a tuple of its first nine fields), position after position.
Written = list[tuple[int, Sequence[Any]]]
# (size, groups): groups[k] holds, in order, the hashes on stored level k * STRIDE of the
# complete subtrees that its next stored node will fold (fewer than 2**STRIDE of them).
_Tree = tuple[int, list[list[bytes]]]
_GROUP = 1 << STRIDE


def create_tree_tables(conn: sqlite3.Connection) -> None:
    """Create the tree's tables in the caller's transaction (the store's migration)."""
    columns = {str(c[1]) for c in conn.execute("PRAGMA table_info(merkle_leaf)")}
    if columns and "hash" not in columns:
        for statement in _UPGRADE:
            conn.execute(statement)
    if columns:
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'merkle_leaf'").fetchone()
        if "WITHOUT ROWID" not in str(sql).upper():
            for statement in _TO_ONE_BTREE:
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
    """A writer's in-memory frontiers, valid while no other connection commits to the file.

    :func:`extend_tree` stages its changes here; the writer calls :meth:`committed` once its
    transaction committed, :meth:`discard` if it did not (a rolled-back append never leaves
    a frontier that the file does not hold)."""

    __slots__ = ("last", "version", "trees", "limit", "_pending")

    def __init__(self, limit: int = 4_096) -> None:
        self.last: int | None = None  # the last store position the tree covers
        self.version: int | None = None  # the file's data_version in the last append's transaction
        self.trees: dict[str, _Tree] = {}
        # Bounded memory with any number of workspaces: the least recently appended-to are
        # dropped (reloaded from the file, one read, when next appended to).
        self.limit = limit
        self._pending: tuple[int, dict[str, _Tree], int] | None = None

    def committed(self) -> None:
        if self._pending is not None:
            self.last, changed, self.version = self._pending
            trees = self.trees
            for workspace, tree in changed.items():
                trees.pop(workspace, None)  # re-inserted last: dicts keep insertion order
                trees[workspace] = tree
            while len(trees) > self.limit:
                del trees[next(iter(trees))]
            self._pending = None

    def discard(self) -> None:
        self.last, self.version, self.trees, self._pending = None, None, {}, None


def extend_tree(
    conn: sqlite3.Connection, cursor: TreeCursor | None = None, written: Written | None = None
) -> None:
    """Add every row committed after the tree's last leaf to its workspace's tree, in commit
    order, inside the caller's open transaction (the append's own).

    ``written``: the rows the caller just inserted; used as they are when they directly follow
    the last leaf (else some rows were written without the tree, and every row after the last
    leaf is read). ``cursor``: the caller's frontiers, used as they are while nobody else
    wrote to the file; else each only if its workspace's tree still has the size it knows
    (else reloaded from the stored groups)."""
    version = 0 if cursor is None else conn.execute("PRAGMA data_version").fetchone()[0]
    if (
        cursor is not None
        and cursor.last is not None
        and cursor.version == version
        and written
        and _follows(written, cursor.last)
    ):
        # The usual append: no other connection committed since this writer's last append
        # (SQLite's data_version, read under the write lock), and its rows follow the last
        # leaf it knows: its frontiers are the file's. (Checking the last leaf inside the
        # leaf's own INSERT instead made SQLite stage the row in a temporary table: ~25 us of
        # a ~0.6 ms durable publish; reading it first, ~6 us.)
        if len(written) == 1 and len(written[0][1]) == 1 and _append_one(conn, cursor, version, *written[0]):
            return
        changed, nodes, leaves = _hash_rows(conn, _each(written), cursor.trees)
        _store(conn, leaves, nodes)
        cursor._pending = (leaves[-1][0], changed, version)
        return
    last = _last_covered(conn)
    trees: dict[str, _Tree] = {}
    if cursor is not None:
        # Someone else wrote: a cached frontier is used only for a workspace whose tree still
        # has the size it knows (leaves are only ever added); the others are forgotten.
        trees, cursor.trees = cursor.trees, {}
    rows = _each(written) if written and _follows(written, last) else _read_after(conn, last)
    changed, nodes, leaves = _hash_rows(conn, rows, trees, check=bool(trees))
    _store(conn, leaves, nodes)
    if leaves:
        last = leaves[-1][0]
    if cursor is not None:
        cursor._pending = (last, changed, version)


def _last_covered(conn: sqlite3.Connection) -> int:
    """The highest store position the tree covers (0: none). Rows the tree does not cover are
    the newest ones (written with the tree off, or by a release without it), so this walks
    back from the newest row, in pages, while its workspace's last leaf is older than it."""
    tops: dict[str, int] = {}
    before = _MAX_POSITION
    while True:
        rows = conn.execute(_NEWEST_ROWS, (before, _CATCH_UP)).fetchall()
        for position, workspace in rows:
            top = tops.get(workspace)
            if top is None:
                found = conn.execute(TOP_LEAF, (workspace,)).fetchone()
                top = tops[workspace] = int(found[1]) if found is not None else 0
            if top >= position:
                return int(position)
        if len(rows) < _CATCH_UP:
            return 0
        before = rows[-1][0]


_Leaf = tuple[int, str, int, bytearray]  # (position, workspace, idx, hash)
_Node = tuple[str, int, int, bytearray]  # (workspace, level, idx, hash)


def _hash_rows(
    conn: sqlite3.Connection,
    rows: Iterable[tuple[int, Any]],
    known: dict[str, _Tree],
    *,
    check: bool = False,
) -> tuple[dict[str, _Tree], list[_Node], list[_Leaf]]:
    """The leaves of ``(position, raw row)``, the stored nodes they complete, and the new
    trees of their workspaces (from ``known``'s, copied, or else the file's; with ``check``,
    ``known``'s only where the file's tree has its size)."""
    changed: dict[str, _Tree] = {}
    nodes: list[_Node] = []
    leaves: list[_Leaf] = []
    it = iter(rows)
    while chunk := list(islice(it, _CHUNK)):
        for (position, raw), data in zip(chunk, leaf_data_many([raw for _, raw in chunk]), strict=True):
            workspace = raw[1]
            tree = changed.get(workspace)
            if tree is None:
                base = known.get(workspace)
                if base is not None and check and size_of(conn, workspace) != base[0]:
                    base = None
                # A copy of the cursor's groups (they stay as the file has them until the
                # commit), pushed to in place for the rest of the batch.
                tree = (base[0], [g[:] for g in base[1]]) if base is not None else _load(conn, workspace)
            size, groups = tree
            digest = _sha256(b"\x00" + data).digest()
            # bytearray, not bytes: Python's sqlite3 binds a bytearray directly, but runs a
            # bytes value through its adapter look-up, which formats and discards an
            # AttributeError (~8k instructions a leaf). Both are stored as the same BLOB.
            leaves.append((position, workspace, size, bytearray(digest)))
            _push(workspace, size, groups, digest, nodes)
            changed[workspace] = (size + 1, groups)
    return changed, nodes, leaves


_CHUNK = 1_000  # rows whose leaf bytes are made (and checked) together: bounded memory


def _push(workspace: str, size: int, groups: list[list[bytes]], leaf: bytes, nodes: list[_Node]) -> None:
    """Append ``leaf`` (the ``size``-th) to ``groups``, in place. A group that fills folds
    into the next stored level's node (``nodes`` gets it): the interior hashes are computed
    15 at a time, in one warm loop, when a stored node completes, not one by one on each
    publish (between two fsyncs, on cold caches, a lone hash costs several times as much)."""
    digest, k, after = leaf, 0, size + 1
    while True:
        if k == len(groups):
            groups.append([])
        group = groups[k]
        group.append(digest)
        if len(group) < _GROUP:
            return
        digest = fold(group)
        group.clear()
        k += 1
        nodes.append((workspace, k * STRIDE, (after >> (k * STRIDE)) - 1, bytearray(digest)))


def _append_one(
    conn: sqlite3.Connection, cursor: TreeCursor, version: int, position: int, rows: Sequence[Any]
) -> bool:
    """A single publish whose workspace's frontier is cached (the usual append): what
    :func:`_hash_rows` and :func:`_store` do, for one row and without their lists and dicts.
    It runs once between two fsyncs, on cold caches, where each object and call costs several
    times what a warm loop shows: ~10 us less a publish, measured. False if not cached."""
    raw = rows[0]
    workspace = raw[1]
    tree = cursor.trees.get(workspace)
    if tree is None:
        return False
    size, groups = tree
    digest = _one_sha256(b"\x00" + leaf_data(raw)).digest()
    conn.execute(_INSERT_LEAF, (position, workspace, size, bytearray(digest)))
    nodes: list[_Node] = []
    groups = [g[:] for g in groups]  # the cursor's own stay as the file has them until the commit
    _push(workspace, size, groups, digest, nodes)
    if nodes:
        conn.executemany(_INSERT_NODE, nodes)
    cursor._pending = (position, {workspace: (size + 1, groups)}, version)
    return True


def _store(conn: sqlite3.Connection, leaves: Sequence[_Leaf], nodes: Sequence[_Node]) -> None:
    if len(leaves) == 1:
        conn.execute(_INSERT_LEAF, leaves[0])
    else:
        # Many rows per statement (as the events go in): fewer VM steps than executemany's one
        # per leaf. 200 leaves bind 800 values, well under SQLite's 32,766.
        for start in range(0, len(leaves), 200):
            chunk = leaves[start : start + 200]
            sql = _INSERT_LEAVES + ", ".join(["(?, ?, ?, ?)"] * len(chunk))
            conn.execute(sql, [v for leaf in chunk for v in leaf])
    if nodes:
        conn.executemany(_INSERT_NODE, nodes)


def _follows(written: Written | None, after: int) -> bool:
    """Whether ``written`` is one run of positions starting right after ``after`` (never guess)."""
    if not written:
        return False
    expected = after + 1
    for first, rows in written:
        if first != expected:
            return False
        expected += len(rows)
    return True


def _each(written: Written) -> list[tuple[int, Any]]:
    """``(position, row)`` of each written row: a list, not a generator (a generator's set-up
    and finalisation cost ~8k instructions a call)."""
    return [pair for first, rows in written for pair in enumerate(rows, first)]


def _read_after(conn: sqlite3.Connection, after: int) -> Iterator[tuple[int, Any]]:
    """``(position, raw row)`` of every row after position ``after``, in bounded pages."""
    while True:
        rows = conn.execute(_AFTER_POSITION, (after, _CATCH_UP)).fetchall()
        for raw in rows:
            yield raw[9], raw
        if len(rows) < _CATCH_UP:
            return
        after = rows[-1][9]


def _load(conn: sqlite3.Connection, workspace: str) -> _Tree:
    """A workspace's size and groups from the stored tree: its size is its highest leaf idx
    + 1; each group is the stored hashes after the last complete node of the level above
    (fewer than 2**STRIDE per stored level: one read)."""
    size = size_of(conn, workspace)
    wanted: list[list[tuple[int, int]]] = []
    level = 0
    while size >> level:
        end = size >> level  # the stored nodes of this level the tree holds
        wanted.append([(level, i) for i in range(end - end % _GROUP, end)])
        level += STRIDE
    hashes = node_hashes(conn, workspace, [n for group in wanted for n in group])
    if any(n not in hashes for group in wanted for n in group):
        raise StoreUnavailable(
            f"the Merkle tree of workspace {workspace!r} lacks stored nodes under its frontier "
            f"(size {size}): the file was modified outside auditbird; run `auditbird verify` on it"
        )
    return size, [[hashes[n] for n in group] for group in wanted]
