"""The tree where Tinybird holds the events: kept by the side that writes them, published beside.

Tinybird has no commit order and no transactions, so it cannot keep a Merkle tree itself. The
relay ships events from a SQLite log that already keeps one (``stores/sqlite_tree.py``); after
each batch Tinybird acknowledged, :class:`TreePublisher` sends the batch's leaves
(``audit_tree``: workspace, index, uid, leaf hash) and then, per workspace, a checkpoint of the
tree up to the last shipped leaf, signed with the source's key (``audit_checkpoints``). Only
then does the relay store its position: a crash re-sends the batch, and its leaves and
checkpoint again (identical rows, which the verifier accepts).

:func:`~.tinybird_verify.verify_tinybird` reads them back and checks the events against them.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from typing import Any

from ..event import now_ms
from ..row import Row
from ..stores._tinybird_http import Protocol, run_sync
from ..stores.merkle import resolve
from ..stores.sqlite import SQLiteStore
from ..stores.sqlite_tree import leaves_between
from ..stores.tinybird import TinybirdStore
from .checkpoint import Checkpoint, CheckpointError, origin_of, signer_for

__all__ = ["TREE_DATASOURCE", "CHECKPOINT_DATASOURCE", "TreePublisher", "publisher_for"]

TREE_DATASOURCE = "audit_tree"
CHECKPOINT_DATASOURCE = "audit_checkpoints"
logger = logging.getLogger("auditbird.relay")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


class TreePublisher:
    """Publishes a SQLite source's tree leaves and signed checkpoints to a Tinybird workspace."""

    def __init__(self, source: SQLiteStore, destination: TinybirdStore) -> None:
        self.source = source
        self.destination = destination
        self.signer = signer_for(source)  # the relay host is trusted with the signing key
        retry = destination.protocol.retry

        def protocol(name: str) -> Protocol:
            return Protocol(destination.host, destination.tb.token, name, retry=retry)

        self._tree, self._checkpoints = protocol(TREE_DATASOURCE), protocol(CHECKPOINT_DATASOURCE)

    def _leaves(self, rows: Sequence[Row]) -> list[tuple[str, int, str, bytes, int]]:
        """``(workspace, idx, uid, leaf hash, timestamp)`` of the shipped rows the tree holds."""
        positions = [int(r.position) for r in rows if r.position is not None]
        if not positions:
            return []
        with self.source._reading() as conn:
            found = leaves_between(conn, min(positions), max(positions))
        by_position = {p: (ws, i, h) for p, ws, i, h in found}
        out = []
        for row in rows:
            leaf = by_position.get(int(row.position or 0))
            if leaf is not None:  # a row written with ?tree=off has none yet: verify will say so
                out.append((leaf[0], leaf[1], row.uid, leaf[2], int(row.timestamp)))
        return out

    def publish(self, rows: Sequence[Row]) -> None:
        """After Tinybird acknowledged ``rows``: their leaves, then one checkpoint per workspace."""
        if self.destination.writer is not None:  # buffered: the events go first, for real
            self.destination.flush()
        leaves = self._leaves(rows)
        if not leaves:
            return
        lines = [
            _line({"workspace": ws, "idx": idx, "uid": uid, "leaf_hash": _b64(h), "timestamp": ts})
            for ws, idx, uid, h, ts in leaves
        ]
        client = self.destination.client
        run_sync(client, self._tree.ingest(lines))
        sizes: dict[str, int] = {}
        for ws, idx, *_ in leaves:
            sizes[ws] = max(sizes.get(ws, 0), idx + 1)
        published = now_ms()
        notes = []
        for ws, size in sizes.items():

            def fetch(nodes: list[tuple[int, int]], ws: str = ws) -> dict[tuple[int, int], bytes]:
                return self.source.tree_nodes(ws, nodes)

            (root,) = resolve([(0, size)], fetch)
            note = self.signer.sign(Checkpoint(origin_of(self.signer, ws), size, root).body())
            notes.append(
                _line({"workspace": ws, "size": size, "checkpoint": note, "published_at": published})
            )
        run_sync(client, self._checkpoints.ingest(notes))


def publisher_for(source: Any, destination: Any) -> TreePublisher | None:
    """A publisher when a SQLite log that keeps a tree relays to Tinybird; else None."""
    if isinstance(source, SQLiteStore) and source.tree and isinstance(destination, TinybirdStore):
        if destination.seed:  # OpenStatus's own datasource: no auditbird datafiles beside it
            return None
        try:
            return TreePublisher(source, destination)
        except (CheckpointError, OSError) as exc:  # no key can be made beside the source
            logger.warning(
                "the relay ships events without their tree: %s (make the key with "
                "`auditbird --store sqlite:///%s checkpoint --public-key` where it can be written)",
                exc,
                source.path,
            )
            return None
    return None
