"""Reading the Merkle tree of a SQLite log: the provable tier's reads (:class:`SQLiteTree`)
and the reads retention and the Tinybird relay make of it. The tables and how they are
written: :mod:`.sqlite_tree` (which re-exports these)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..row import Row
from .capabilities import ProvableStore
from .merkle import Node, fold, stored_base

__all__ = ["COLUMNS", "SQLiteTree", "leaves_between", "leaves_to_expire", "node_hashes"]

COLUMNS = "uid, workspace, id, action, actor, targets, metadata, timestamp, version, position"


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
        below it (:func:`node_hashes`)."""
        with self._reading() as conn:
            try:
                return node_hashes(conn, workspace, nodes)
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # a log written before the tree existed
                    return {}
                raise

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
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a log written before the tree existed, not yet opened to write
            return []
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
