"""``auditbird verify --store tinybird://...``: the rows that come back from Tinybird, checked
against the tree and signed checkpoint the writer published beside them (``tinybird_tree``).

1. The checkpoint (the latest in ``audit_checkpoints``, or a saved one) must carry the writer's
   signature: the public key is required, nothing in the Tinybird workspace is trusted.
2. The published leaves (``audit_tree``) must be complete, agree where re-sent, and fold to the
   checkpoint's root: else the tree itself was edited in Tinybird ("rewritten").
3. Each leaf's event, read back from ``audit_log``, must hash to it: else "changed" (edited) or
   "missing" (deleted, or possibly removed by the datasource's TTL). Only a caller who names a
   date (``expired_before``; ``--expired-before``) gets "expired" for gone events the published
   tree dates before it: that timestamp is not under the signature (see docs/provable-history.md).
4. Every event in the workspace must have a leaf: else "inserted" (a row the writer never wrote).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from ..query import MAX_LIMIT
from ..row import Row
from ..stores._tinybird_http import Exchange, Send, run_sync
from ..stores.merkle import append_leaf, frontier_root, leaf_data, leaf_hash
from ..stores.tinybird import TinybirdStore
from .checkpoint import Checkpoint, CheckpointError, open_checkpoint, workspace_of
from .verify import VerifyReport

__all__ = ["latest_checkpoint", "verify_tinybird"]

_LEAVES_PIPE = "audit_tree_leaves"
_CHECKPOINTS_PIPE = "audit_checkpoints_latest"
Leaf = tuple[int, str, bytes, int]  # idx, uid, leaf hash, timestamp


def _pipe(store: TinybirdStore, name: str, params: dict[str, str]) -> list[dict[str, Any]]:
    protocol = store.protocol
    url = f"{protocol.host}/v0/pipes/{name}.json"

    def read() -> Exchange:
        response = yield from protocol.request(
            f"a read of pipe {name}",
            lambda t: Send("GET", url, params, protocol._headers, None, timeout=t),
        )
        if response.status_code != 200:
            raise protocol.error(response, f"pipe {name!r}", f"a read of pipe {name}")
        return response.json()["data"]

    data: list[dict[str, Any]] = run_sync(store.client, read())
    return data


def latest_checkpoint(store: TinybirdStore, workspace: str) -> str:
    """The text of the workspace's checkpoint with the largest tree size published in Tinybird."""
    found = _pipe(store, _CHECKPOINTS_PIPE, {"ws": workspace, "limit": "1"})
    if not found:
        raise CheckpointError(
            f"no checkpoint published in Tinybird for workspace {workspace!r}: relay events there "
            "from a log that keeps a tree (auditbird relay), or pass --checkpoint FILE"
        )
    return str(found[0]["checkpoint"])


def _leaves(store: TinybirdStore, workspace: str) -> Iterator[Leaf | str]:
    """Published leaves in index order, one per index; a string where something is wrong."""
    start = 0
    while True:
        page = _pipe(store, _LEAVES_PIPE, {"ws": workspace, "start": str(start), "limit": str(MAX_LIMIT)})
        last: Leaf | None = None
        for item in page:
            leaf = (
                int(item["idx"]),
                str(item["uid"]),
                base64.b64decode(item["leaf_hash"]),
                int(item["timestamp"]),
            )
            if last is not None and leaf[0] == last[0]:
                if leaf[1:] != last[1:]:  # the timestamp too: the relay re-sends identical rows
                    yield f"the published tree holds two different leaves for event #{leaf[0] + 1}"
                    return
                continue  # a re-sent leaf, identical
            if leaf[0] != start:
                yield f"the published tree lacks leaf #{start + 1} (the next one is #{leaf[0] + 1})"
                return
            yield leaf
            last, start = leaf, start + 1
        if len(page) < MAX_LIMIT:
            return


def _events(store: TinybirdStore, workspace: str, uids: list[str]) -> dict[str, Row]:
    params = {"ws": workspace, "uids": ",".join(uids), "limit": str(len(uids))}
    rows: list[Row] = run_sync(store.client, store.protocol.pipe(store.list_pipe, params))
    return {row.uid: row for row in rows}


def verify_tinybird(
    store: TinybirdStore,
    verifier_key: str,
    *,
    workspace: str = "",
    checkpoint_text: str | None = None,
    expired_before: int | None = None,
) -> VerifyReport:
    """Check the workspace's events in Tinybird against the published tree and a signed
    checkpoint (the latest published, or ``checkpoint_text``). ``expired_before`` (ms): the
    caller accepts that a missing event the published tree dates before this was removed by the
    datasource's TTL, not by someone (that date is not signed: an opt-in, never a default)."""
    if store.writer is not None:
        store.flush()
    cp = open_checkpoint(checkpoint_text or latest_checkpoint(store, workspace), verifier_key)
    if workspace_of(cp.origin) != workspace:
        raise CheckpointError(
            f"the checkpoint is for workspace {workspace_of(cp.origin)!r}, not {workspace!r}"
        )
    bad = _check_root(store, workspace, cp)
    if bad is not None:
        return bad
    tree_uids: set[str] = set()
    expired = [0, 0, 0]
    page: list[Leaf] = []
    for leaf in _leaves(store, workspace):
        if isinstance(leaf, str):  # already reported by _check_root for the first size leaves
            break
        tree_uids.add(leaf[1])
        if leaf[0] < cp.size:
            page.append(leaf)
        if len(page) == MAX_LIMIT:
            bad = _check_events(store, workspace, cp, page, expired_before, expired)
            if bad is not None:
                return bad
            page = []
    bad = _check_events(store, workspace, cp, page, expired_before, expired)
    if bad is not None:
        return bad
    bad = _check_inserted(store, workspace, cp, tree_uids)
    if bad is not None:
        return bad
    return VerifyReport(True, cp.size, cp.size, expired=(expired[0], expired[1], expired[2]))


def _check_root(store: TinybirdStore, workspace: str, cp: Checkpoint) -> VerifyReport | None:
    frontier: list[bytes] = []
    count = 0
    for leaf in _leaves(store, workspace):
        if isinstance(leaf, str):
            return VerifyReport(False, 0, cp.size, None, "rewritten", leaf)
        if leaf[0] >= cp.size:
            break
        append_leaf(frontier, leaf[0], leaf[2])
        count += 1
    if count < cp.size:
        return VerifyReport(
            False,
            0,
            cp.size,
            count + 1,
            "rewritten",
            f"the published tree holds {count} leaves; the signed checkpoint covers {cp.size}",
        )
    if frontier_root(frontier) != cp.root:
        return VerifyReport(
            False,
            0,
            cp.size,
            None,
            "rewritten",
            f"the published leaves do not hash to the signed checkpoint's root ({cp.size} events): "
            "audit_tree was edited in Tinybird, or it lacks leaves",
        )
    return None


def _check_events(
    store: TinybirdStore,
    workspace: str,
    cp: Checkpoint,
    page: list[Leaf],
    expired_before: int | None,
    expired: list[int],
) -> VerifyReport | None:
    if not page:
        return None
    rows = _events(store, workspace, [leaf[1] for leaf in page])
    for idx, uid, digest, timestamp in page:
        n = idx + 1
        row = rows.get(uid)
        if row is None:
            if expired_before is not None and timestamp < expired_before:
                expired[0] += 1
                expired[1], expired[2] = expired[1] or n, n
                continue
            return VerifyReport(False, idx, cp.size, n, "missing", _gone(n, uid, timestamp, expired_before))
        if leaf_hash(leaf_data(row)) != digest:
            return VerifyReport(
                False,
                idx,
                cp.size,
                n,
                "changed",
                f"event #{n} (uid {uid}) no longer hashes to the leaf its writer recorded",
            )
    return None


def _gone(n: int, uid: str, timestamp: int, expired_before: int | None) -> str:
    when = datetime.fromtimestamp(timestamp / 1000, UTC).isoformat(timespec="seconds")
    why = f"event #{n} (uid {uid}, dated {when} by the published tree) is no longer in Tinybird"
    if expired_before is not None:
        return f"{why}, and that is not before the --expired-before date: it was deleted"
    return (
        f"{why}: deleted, or possibly removed by the datasource TTL. The signed checkpoint does not "
        "date it; if a TTL removes events older than some date, pass --expired-before DATE"
    )


def _check_inserted(
    store: TinybirdStore, workspace: str, cp: Checkpoint, tree_uids: set[str]
) -> VerifyReport | None:
    after: tuple[int, str] | None = None
    while True:
        params = {"ws": workspace, "order": "asc", "limit": str(MAX_LIMIT)}
        if after is not None:
            params["after_ts"], params["after_uid"] = str(after[0]), after[1]
        rows: list[Row] = run_sync(store.client, store.protocol.pipe(store.list_pipe, params))
        for row in rows:
            if row.uid not in tree_uids:
                return VerifyReport(
                    False,
                    cp.size,
                    cp.size,
                    None,
                    "inserted",
                    f"uid {row.uid} (timestamp {row.timestamp}) is in Tinybird but its writer never "
                    "recorded it: written behind the relay's back (or not yet in the published tree)",
                )
        if len(rows) < MAX_LIMIT:
            return None
        after = (rows[-1].timestamp, rows[-1].uid)
