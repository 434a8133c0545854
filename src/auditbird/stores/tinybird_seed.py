"""OpenStatus workspaces: the seed's own datasource (``audit_log__v0``) and pipe (``endpoint_audit_log__v0``).

The seed's datafiles keep no ``uid`` and no ``workspace``, and ``targets`` is Nullable. A row
read from them is given a uid derived from its content (:func:`seed_uid`): the same row reads
back with the same uid on every read and in every process, and copies of one row (a retried
publish) share it, so reads still return each event once. ``workspace`` is ``""``.

A stream's events (``get_audit_log``) are read through the seed's own pipe, as the seed reads
them; every other read goes through the Query API (``/v0/sql``, typed parameters), which needs a
token that may read the datasource. Only a read by uid alone cannot be answered (the uid is not
stored): ``auditbird tinybird migrate`` copies the rows into auditbird's own datasource, where
every read is served by its indexed pipes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._errors import StoreUnavailable, UnsupportedOperation
from ..query import Query
from ._tinybird_http import Exchange, Protocol, Send
from ._tinybird_seed_sql import read_seed_sql
from .base import Row

if TYPE_CHECKING:
    from .tinybird import TinybirdStore

__all__ = [
    "SEED_DATASOURCE",
    "SEED_NAMESPACE",
    "is_seed_datasource",
    "seed_pipe",
    "seed_uid",
    "row_from_seed",
    "check_seed_rows",
    "read_seed",
    "pipe_items",
]

SEED_DATASOURCE = "audit_log__v0"
# Fixed for good: every derived uid depends on it, and a migration run twice must agree with itself.
SEED_NAMESPACE = uuid.UUID("5eed0a0d-17b1-4d5e-9a0c-0b5e5a7d0a11")
_SYSTEM_ACTOR = '{"id":"","name":"system"}'


def is_seed_datasource(name: str) -> bool:
    """Whether ``name`` is the seed's datasource (rows without uid and workspace)."""
    return name == SEED_DATASOURCE


def seed_pipe(datasource: str) -> str:
    """The seed's pipe over ``datasource``: ``endpoint_audit_log__v0`` for ``audit_log__v0``."""
    return f"endpoint_{datasource}"


def _canonical(text: str | None) -> Any:
    """A JSON column's value, so formatting and key order do not change the uid."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {"$unparsed": text}  # kept apart from any valid JSON value


def seed_uid(row: Row) -> str:
    """A UUIDv5 over the canonical JSON of the row's content (all but ``uid`` and ``workspace``).

    Deterministic: equal content gives an equal uid on every read, so copies of a row are
    returned once and a migration run again stores nothing new.
    """
    content = [
        row.id,
        row.action,
        _canonical(row.actor),
        _canonical(row.targets),
        _canonical(row.metadata),
        int(row.timestamp),
        int(row.version),
    ]
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(uuid.uuid5(SEED_NAMESPACE, text))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def row_from_seed(item: dict[str, Any]) -> Row:
    """A row of the seed's datasource (no uid, no workspace, Nullable targets) as an auditbird row.

    ``targets`` NULL reads as ``'[]'`` and ``actor`` '' as the system actor, as auditbird stores
    them; the uid is derived from that content (:func:`seed_uid`).
    """
    metadata = item.get("metadata")
    row = Row(
        "",
        "",
        str(item["id"]),
        str(item["action"]),
        _text(item.get("actor") or _SYSTEM_ACTOR),
        _text(item.get("targets") or "[]"),
        None if metadata in (None, "") else _text(metadata),
        int(item["timestamp"]),
        int(item["version"]) if item.get("version") is not None else 1,
    )
    return row._replace(uid=seed_uid(row))


def check_seed_rows(rows: Sequence[Row], datasource: str) -> None:
    """The seed's datasource has no workspace column: a row for another workspace would be
    readable from the default one, so it is refused before anything is sent."""
    others = sorted({r.workspace for r in rows if r.workspace})
    if others:
        raise UnsupportedOperation(
            f"{datasource} (the seed's datasource) has no workspace column, so events for workspace "
            f"{others[0]!r} cannot be kept apart there: nothing was sent. Publish them to auditbird's "
            "datasource (`auditbird tinybird datafiles DIR`, then `auditbird tinybird migrate` to copy "
            "the seed's rows over)"
        )


# -- reads ----------------------------------------------------------------------------------


def pipe_items(protocol: Protocol, name: str, params: dict[str, str]) -> Exchange:
    """The raw ``data`` objects of ``GET /v0/pipes/<name>.json``."""
    url = f"{protocol.host}/v0/pipes/{name}.json"
    response = yield from protocol.request(
        f"a read of pipe {name}",
        lambda t: Send("GET", url, params, protocol._headers, None, timeout=t),
    )
    if response.status_code != 200:
        raise protocol.error(response, f"pipe {name!r}", f"a read of pipe {name}")
    try:
        data = response.json()["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreUnavailable(f"pipe {name!r} at {protocol.host} did not answer JSON rows ({exc})") from exc
    if not isinstance(data, list):
        raise StoreUnavailable(f"pipe {name!r} at {protocol.host} did not answer a list of rows")
    return data


def _pipe_answers(q: Query) -> bool:
    """Whether the seed's own pipe (one stream, by event_id) can answer ``q``; the rest is
    filtered in Python. The pipe works with the seed's read token; the Query API needs one
    that may read the datasource."""
    return q.event_id is not None and all(
        getattr(q, name) is None for name in ("actor_id", "target_type", "target_id", "text")
    )


def read_seed(store: TinybirdStore, q: Query) -> Exchange:
    """``q`` over a seed datasource: a stream through the seed's pipe, anything else through the
    Query API (:mod:`._tinybird_seed_sql`)."""
    name = store.tb.datasource
    unsupported = None
    if q.order == "position":
        unsupported = "order='position' (Tinybird keeps no commit order)"
    elif q.uid is not None and q.event_id is None:
        unsupported = "a read by uid alone (the uid is derived from the row, not stored: give event_id too)"
    if unsupported is not None:
        raise UnsupportedOperation(
            f"{name} is the seed's datasource, which cannot answer {unsupported}. Copy the rows into "
            "auditbird's datasource with `auditbird tinybird migrate` to use every read"
        )
    if q.workspace:  # no row of the seed's datasource belongs to another workspace
        return []
    if not _pipe_answers(q):
        return (yield from read_seed_sql(store, q, row_from_seed))
    items = yield from pipe_items(store.protocol, seed_pipe(name), {"event_id": q.event_id or ""})
    rows: dict[str, Row] = {}
    for item in items:
        try:
            row = row_from_seed(item)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreUnavailable(
                f"pipe {seed_pipe(name)!r} answered a row that is not an audit row "
                f"({type(exc).__name__}: {exc}); check that it is the seed's endpoint_audit_log pipe"
            ) from exc
        rows.setdefault(row.uid, row)
    selected = [r for r in rows.values() if _matches(r, q)]
    selected.sort(key=lambda r: (r.timestamp, r.uid), reverse=q.order == "desc")
    if q.after is not None:
        after = q.after
        if q.order == "desc":
            selected = [r for r in selected if (r.timestamp, r.uid) < after]
        else:
            selected = [r for r in selected if (r.timestamp, r.uid) > after]
    return selected if q.limit is None else selected[: q.limit]


def _matches(row: Row, q: Query) -> bool:
    return (
        (q.uid is None or row.uid == q.uid)
        and (not q.actions or row.action in q.actions)
        and (q.since is None or row.timestamp >= q.since)
        and (q.until is None or row.timestamp < q.until)
    )
