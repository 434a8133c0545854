"""Reading the Merkle tree of a SQLite log: the provable tier's reads (:class:`SQLiteTree`)
and the reads retention and the Tinybird relay make of it. The tables and how they are
written: :mod:`.sqlite_tree` (which re-exports these)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from ..row import Row
from .capabilities import ProvableStore
from .merkle import Node, fold, stored_base

__all__ = [
    "COLUMNS",
    "TOP_LEAF",
    "SQLiteTree",
    "leaf_from",
    "leaves_between",
    "leaves_to_expire",
    "node_hashes",
    "size_of",
]

_T = TypeVar("_T")
COLUMNS = "uid, workspace, id, action, actor, targets, metadata, timestamp, version, position"


def leaf_from(conn: sqlite3.Connection, workspace: str, position: int) -> tuple[int, int] | None:
    """``(idx, position)`` of ``workspace``'s first leaf at store position ``position`` or
    after (None: none). The leaves are keyed by ``(workspace, idx)``, and within a workspace
    positions grow with idx by at least 1 a leaf, so the answer lies in ``[top idx - (top
    position - position), position - 1]``; the low end is tried first (exact when nobody else
    wrote in between: one workspace per file, the common case), then a binary search (at most
    ~log2(size) point reads)."""
    top = conn.execute(TOP_LEAF, (workspace,)).fetchone()
    if top is None or int(top[1]) < position:
        return None
    top_idx, top_position = int(top[0]), int(top[1])
    lo, hi = max(0, top_idx - (top_position - position)), min(top_idx, max(position - 1, 0))
    first = True
    while lo < hi:
        mid = lo if first else (lo + hi) // 2
        first = False
        found = conn.execute(_AT, (workspace, mid)).fetchone()
        if found is None:  # a hole: the file was edited outside auditbird (verify names it)
            return None
        if int(found[0]) >= position:
            hi = mid
        else:
            lo = mid + 1
    found = conn.execute(_AT, (workspace, lo)).fetchone()
    return (lo, int(found[0])) if found is not None and int(found[0]) >= position else None


TOP_LEAF = "SELECT idx, position FROM merkle_leaf WHERE workspace = ? ORDER BY idx DESC LIMIT 1"


def size_of(conn: sqlite3.Connection, workspace: str) -> int:
    """The size of ``workspace``'s tree: its last leaf's idx + 1 (0: no leaf)."""
    top = conn.execute(TOP_LEAF, (workspace,)).fetchone()
    return int(top[0]) + 1 if top is not None else 0


_AT = "SELECT position FROM merkle_leaf WHERE workspace = ? AND idx = ?"


def leaves_between(conn: sqlite3.Connection, lo: int, hi: int) -> list[tuple[int, str, int, bytes]]:
    """``(position, workspace, idx, hash)`` of the leaves of the stored rows at positions
    ``lo`` to ``hi``: per workspace among those rows, its leaves from the first at ``lo`` or
    after, in idx order, up to ``hi``."""
    if not _read(conn, _ANY_LEAF, ()):  # no leaves, or a log written before the tree existed
        return []
    workspaces = [w for (w,) in _read(conn, _WORKSPACES_BETWEEN, (lo, hi))]
    out: list[tuple[int, str, int, bytes]] = []
    for workspace in workspaces:
        start = leaf_from(conn, workspace, lo)
        if start is None:
            continue
        for i, p, h in _leaves_from(conn, workspace, start[0]):
            if p > hi:
                break
            out.append((p, str(workspace), i, h))
    return out


def _leaves_from(conn: sqlite3.Connection, workspace: str, idx: int) -> Iterator[tuple[int, int, bytes]]:
    """``(idx, position, hash)`` of ``workspace``'s leaves from ``idx`` on, in idx (and so
    position) order, read in pages (bounded memory; the caller stops when it has enough)."""
    while True:
        page = conn.execute(_LEAVES_FROM, (workspace, idx, _PAGE)).fetchall()
        for i, p, h in page:
            yield int(i), int(p), bytes(h)
        if len(page) < _PAGE:
            return
        idx = int(page[-1][0]) + 1


_ANY_LEAF = "SELECT 1 FROM merkle_leaf LIMIT 1"
_POSITION_OF = "SELECT position FROM audit_log WHERE workspace = ? AND uid = ?"
_WORKSPACES_BETWEEN = "SELECT DISTINCT workspace FROM audit_log WHERE position BETWEEN ? AND ?"
_LEAVES_FROM = (
    "SELECT idx, position, hash FROM merkle_leaf WHERE workspace = ? AND idx >= ? ORDER BY idx LIMIT ?"
)
_PAGE = 1_000


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
        "SELECT position, timestamp FROM audit_log "
        "WHERE workspace = ? AND timestamp < ? "
        "AND NOT (action = ? AND actor_id IS ?) ORDER BY timestamp LIMIT ?",
        (workspace, cutoff, keep_action, keep_actor_id, limit),
    ).fetchall()
    if not found:
        return []
    # The leaves of these rows, by one walk of the workspace's leaves over their span of
    # positions (positions grow with idx), not a search each.
    wanted = {int(p) for p, _ in found}
    start = leaf_from(conn, workspace, min(wanted))
    idx_of: dict[int, int] = {}
    if start is not None:
        last = max(wanted)
        for i, p, _ in _leaves_from(conn, workspace, start[0]):
            if p > last:
                break
            if p in wanted:
                idx_of[p] = i
    return [(int(p), int(t), idx_of[int(p)]) for p, t in found if int(p) in idx_of]


class SQLiteTree(ProvableStore):
    """The provable tier of the SQLite store (a mixin: ``class SQLiteStore(SQLiteTree, ...)``).
    Reads run on the store's reader connections, beside the writer."""

    if TYPE_CHECKING:

        def _reading(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def tree_size(self, workspace: str) -> int:
        with self._reading() as conn:
            return _unless_untreed(0, size_of, conn, workspace)

    def tree_nodes(self, workspace: str, nodes: Sequence[Node]) -> dict[Node, bytes]:
        """Each node's stored hash, or the fold of the (at most ``2**(STRIDE-1)``) stored ones
        below it (:func:`node_hashes`)."""
        with self._reading() as conn:
            return _unless_untreed({}, node_hashes, conn, workspace, nodes)

    def tree_index(self, workspace: str, uid: str) -> int | None:
        with self._reading() as conn:
            row = _read(conn, _POSITION_OF, (workspace, uid))
            if not row:
                return None
            position = int(row[0][0])
            found = _unless_untreed(None, leaf_from, conn, workspace, position)
        return found[0] if found is not None and found[1] == position else None

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
                    f"SELECT {COLUMNS} FROM audit_log WHERE workspace = ? AND position > ? "  # noqa: S608
                    "ORDER BY position LIMIT ?",
                    (workspace, after, batch),
                )
            for raw in found:
                yield Row._make(raw)
            if len(found) < batch:
                return
            after = int(found[-1][9])


def _read(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> list[Any]:
    return _unless_untreed([], lambda: conn.execute(sql, params).fetchall())


def _unless_untreed(default: _T, read: Callable[..., _T], *args: Any) -> _T:
    """``read(*args)``, or ``default`` on a log written before the tree existed and not yet
    opened to write (its tree tables are missing)."""
    try:
        return read(*args)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return default
        raise


def node_hashes(conn: sqlite3.Connection, workspace: str, nodes: Sequence[Node]) -> dict[Node, bytes]:
    """Each complete node's hash (stored, or folded from the stored ones below it), one
    statement per :data:`_NODES_PER_READ` nodes; a node missing any stored hash is left out.
    The writer reloads its frontier with it, and proofs and verify read their nodes with it."""
    out: dict[Node, bytes] = {}
    for start in range(0, len(nodes), _NODES_PER_READ):
        out.update(_node_hashes(conn, workspace, nodes[start : start + _NODES_PER_READ]))
    return out


# SQLite caps a compound SELECT at 500 terms (SQLITE_MAX_COMPOUND_SELECT); verify asks for 512.
_NODES_PER_READ = 200


def _node_hashes(conn: sqlite3.Connection, workspace: str, nodes: Sequence[Node]) -> dict[Node, bytes]:
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
