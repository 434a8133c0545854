"""``auditbird verify``: do the stored events still hash to the tree and to a signed checkpoint?

The events are re-read in commit order and hashed again; the stored leaf hashes say what was
recorded at each place; the checkpoint's root (signed) says what the first ``size`` leaves
were. At the first place the two sequences part, a one-step look-ahead on each side tells a
missing event from an inserted one or two that swapped places; anything else is a change.
Memory stays constant: both sides are read in pages.

If the tree's own tables were rewritten to match altered events, the events and the tree
agree but their root is not the checkpoint's: reported as such (without a position, which only
an untouched record of the leaves could give).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..retention import expired_ranges
from ..stores.merkle import STRIDE, ProofError, append_leaf, frontier_root, leaf_data, leaf_hash
from .checkpoint import Checkpoint
from .expiry import ExpiryCheck, run_event
from .export import MAX_LINE_BYTES, ExportError, verify_export, write_export
from .proofs import log_workspace, provable_store, tree_root
from .report import VerifyReport

__all__ = [
    "VerifyReport",
    "ExportError",
    "MAX_LINE_BYTES",
    "verify_store",
    "verify_export",
    "write_export",
]

_PAGE = 5_000
_NODES = 512  # stored nodes compared per read: bounded memory however long the log


class _Peek:
    """An iterator with a look-ahead of one and two."""

    def __init__(self, items: Iterable[Any]) -> None:
        self._it: Iterator[Any] = iter(items)
        self._buf: list[Any] = []

    def peek(self, ahead: int = 0) -> Any:
        while len(self._buf) <= ahead:
            try:
                self._buf.append(next(self._it))
            except StopIteration:
                return None
        return self._buf[ahead]

    def pop(self) -> Any:
        item = self.peek()
        self._buf.pop(0)
        return item


def _stored_leaves(store: Any, workspace: str, size: int) -> Iterator[tuple[int, bytes]]:
    start = 0
    while start < size:
        page = store.tree_leaves(workspace, start, min(_PAGE, size - start))
        if not page:
            return
        for _idx, position, digest in page:
            yield position, digest
        start += len(page)


# The "leaf" of a row whose JSON nests beyond the parser's depth limit (edited by hand: its
# hash cannot be computed): never equal to a 32-byte leaf hash, so the row is reported where it is.
_TOO_DEEP = b"nests too deep"


def _data_leaves(store: Any, workspace: str) -> Iterator[tuple[int, bytes, str, Any]]:
    for row in store.iter_rows(workspace):
        try:
            leaf, run = leaf_hash(leaf_data(row)), run_event(row)
        except RecursionError:  # the parsers give up after ~1,000 levels, in bounded time and memory
            leaf, run = _TOO_DEEP, None
        yield int(row.position), leaf, row.uid, run


class _Walk:
    """One pass over the events and the stored leaves side by side, in tree order: each leaf
    folded into ``frontier`` and handed to the node check, an expired one on its stored hash."""

    def __init__(
        self,
        store: Any,
        ws: str,
        data: _Peek,
        tree: _Peek,
        frontier: list[bytes],
        gone: ExpiryCheck,
        nodes: _NodeCheck,
    ) -> None:
        self.store, self.ws, self.data, self.tree = store, ws, data, tree
        self.frontier, self.gone, self.nodes = frontier, gone, nodes

    def run(self, start: int, stop: int, expired: list[int], size: int) -> VerifyReport | None:
        """Leaves ``start`` to ``stop``; the first difference as a report (against ``size``)."""
        data, tree, gone = self.data, self.tree, self.gone
        for i in range(start, stop):
            d, t = data.peek(), tree.peek()
            if _expired(gone, i, d, t, expired):  # its data was removed by retention; its leaf stays
                made = append_leaf(self.frontier, i, t[1])
                tree.pop()
            elif d is None or t is None or d[1] != t[1]:
                return _first_difference(self.store, self.ws, i, data, tree, size)
            else:
                made = append_leaf(self.frontier, i, d[1])
                gone.saw(i, d)
                data.pop()
                tree.pop()
            self.nodes.add(made)
        return None


def verify_store(
    log_or_store: Any, checkpoint: Checkpoint | None = None, *, workspace: str | None = None
) -> VerifyReport:
    """Check the workspace's events against its stored tree and ``checkpoint`` (already opened
    with :func:`~.checkpoint.open_checkpoint`; None: the tree as it stands)."""
    store = provable_store(log_or_store)
    ws = log_workspace(log_or_store, workspace)
    tree_size = store.tree_size(ws)
    size = tree_size if checkpoint is None else checkpoint.size
    if size > tree_size:
        return VerifyReport(
            False,
            0,
            size,
            None,
            "missing",
            f"the checkpoint covers {size} events but the tree holds {tree_size}: events were removed",
        )
    data, tree = _Peek(_data_leaves(store, ws)), _Peek(_stored_leaves(store, ws, tree_size))
    gone, expired = ExpiryCheck(lambda: expired_ranges(store, ws)), [0, 0, 0]
    frontier: list[bytes] = []
    # Nothing signed vouches for the tree's stored nodes (a checkpoint of the whole tree needs
    # no consistency proof; nodes under its root or past it are read by no check): compare
    # each one, what proofs and the next checkpoint are made of, with the leaves below it.
    nodes = _NodeCheck(store, ws)
    walk = _Walk(store, ws, data, tree, frontier, gone, nodes)
    bad = walk.run(0, size, expired, size)
    if bad is not None:
        return bad
    if checkpoint is not None and frontier_root(frontier) != checkpoint.root:
        return VerifyReport(
            False,
            0,
            size,
            None,
            "rewritten",
            f"the events and the tree agree, but their first {size} do not hash to the checkpoint's "
            "root: history (tree included) was rewritten since it was signed",
        )
    # The rest of the tree, past the checkpoint, must still hold the events as recorded.
    bad = walk.run(size, tree_size, [0, 0, 0], tree_size)
    if bad is not None:
        return bad
    unaccounted = gone.problem()
    if unaccounted is not None:
        leaf, why = unaccounted
        return VerifyReport(False, leaf, size, leaf + 1, "missing", f"the event is gone and {why}")
    extra = data.peek()
    if extra is not None:
        return VerifyReport(
            False,
            size,
            size,
            tree_size + 1,
            "inserted",
            f"store position {extra[0]} (uid {extra[2]}) is not in the tree: it was written behind "
            "auditbird's back (or with ?tree=off; an append through auditbird adds it)",
        )
    # Last: a difference in the events themselves is named first, at its event.
    if (forged := nodes.finish(log_or_store, tree_size, frontier_root(frontier))) is not None:
        return forged
    return VerifyReport(
        True, size, size, expired=(expired[0], expired[1], expired[2]), expired_unsigned=gone.unsigned(size)
    )


class _NodeCheck:
    """The tree's stored nodes (every :data:`STRIDE`-th level above the leaves) compared with
    the ones the leaves fold to, as the leaves stream by, :data:`_NODES` per read; then the
    tree's root with the leaves' root. Keeps the first that disagrees (or is missing)."""

    def __init__(self, store: Any, workspace: str) -> None:
        self.store, self.workspace = store, workspace
        self.pending: dict[tuple[int, int], bytes] = {}
        self.first: tuple[int, int] | None = None

    def add(self, made: list[tuple[int, int, bytes]]) -> None:
        if self.first is not None:
            return
        for level, index, digest in made:
            if level and level % STRIDE == 0:
                self.pending[(level, index)] = digest
        if len(self.pending) >= _NODES:
            self._compare()

    def _compare(self) -> None:
        pending, self.pending = self.pending, {}
        stored = self.store.tree_nodes(self.workspace, list(pending))
        for node, digest in pending.items():  # in the order the leaves completed them
            if stored.get(node) != digest:
                self.first = node
                return

    def finish(self, log_or_store: Any, size: int, root: bytes) -> VerifyReport | None:
        if self.first is None and self.pending:
            self._compare()
        if self.first is not None:
            level, index = self.first
            first, last = (index << level) + 1, (index + 1) << level
            where = f"node (level {level}, index {index}), over events #{first}-#{last},"
        else:
            try:
                stored_root = tree_root(log_or_store, size, workspace=self.workspace)[1]
            except ProofError:
                stored_root = b""
            if stored_root == root:
                return None
            where = "the tree's root"
        return VerifyReport(
            False,
            0,
            size,
            None,
            "forged",
            f"the tree's stored nodes disagree with its leaves: {where} is not the hash of the "
            "leaves below it (a merkle_node row was overwritten or removed behind auditbird's back): "
            "inclusion proofs and checkpoints made from this tree are wrong; check it against a "
            "checkpoint signed before the change (auditbird verify --checkpoint FILE)",
        )


def _expired(gone: ExpiryCheck, i: int, d: Any, t: Any, seen: list[int]) -> bool:
    """Whether leaf ``i`` is listed as removed by retention (and its row is indeed gone); counts
    it. The listing is checked against the runs' events at the end (:class:`ExpiryCheck`)."""
    if not gone.claims(i, d, t):
        return False
    seen[0] += 1
    seen[1] = seen[1] or i + 1
    seen[2] = i + 1
    return True


def _first_difference(store: Any, ws: str, i: int, data: _Peek, tree: _Peek, size: int) -> VerifyReport:
    n = i + 1
    d0, d1, t0, t1 = data.peek(), data.peek(1), tree.peek(), tree.peek(1)
    if t0 is None:
        return VerifyReport(
            False, i, size, n, "missing", f"the tree lacks leaf #{n}: its tables were truncated"
        )
    if d0 is None:
        return VerifyReport(
            False,
            i,
            size,
            n,
            "missing",
            f"the log ends after {i} events; the tree records {size} "
            f"(event #{n} was at store position {t0[0]})",
        )
    if d1 is not None and t1 is not None and d0[1] == t1[1] and d1[1] == t0[1]:
        return VerifyReport(
            False,
            i,
            size,
            n,
            "reordered",
            f"events #{n} and #{n + 1} swapped places (store positions {d0[0]} and {d1[0]})",
        )
    if t1 is not None and d0[1] == t1[1]:
        return VerifyReport(
            False, i, size, n, "missing", f"the event recorded at store position {t0[0]} was deleted"
        )
    if d1 is not None and d1[1] == t0[1]:
        return VerifyReport(
            False,
            i,
            size,
            n,
            "inserted",
            f"store position {d0[0]} (uid {d0[2]}) holds an event the tree never recorded",
        )
    if d0[1] == _TOO_DEEP:
        return VerifyReport(
            False,
            i,
            size,
            n,
            "changed",
            f"store position {d0[0]} (uid {d0[2]}) holds JSON that nests too deep to parse: it is not "
            "the event recorded for it (the row was edited behind auditbird's back)",
        )
    moved = _find_leaf(store, ws, d0[1], size)
    if moved is not None:
        return VerifyReport(
            False,
            i,
            size,
            n,
            "reordered",
            f"store position {d0[0]} (uid {d0[2]}) holds what was recorded as event #{moved + 1}",
        )
    return VerifyReport(
        False,
        i,
        size,
        n,
        "changed",
        f"store position {d0[0]} (uid {d0[2]}) no longer hashes to the leaf recorded for it",
    )


def _find_leaf(store: Any, ws: str, digest: bytes, size: int) -> int | None:
    for index, (_position, stored) in enumerate(_stored_leaves(store, ws, size)):
        if stored == digest:
            return index
    return None


def checkpoint_of_store(log_or_store: Any, *, workspace: str | None = None) -> Checkpoint:
    """The unsigned checkpoint of the tree as it stands (origin left empty)."""
    size, root = tree_root(log_or_store, workspace=workspace)
    return Checkpoint("", size, root)
