"""The stored row and its JSON wire form: the neutral type that stores and the codec share.

Stores import this module, the codec imports this module, and neither imports the other, so
the storage layer stays a leaf (see ARCHITECTURE.md).

>>> row = Row("u1", "", "monitor:1", "monitor.down", '{"id":"","name":"system"}', "[]", None, 1, 1)
>>> row_to_wire(row)
'{"uid":"u1","workspace":"","id":"monitor:1","action":"monitor.down","actor":{"id":"","name":"system"},"targets":[],"metadata":null,"timestamp":1,"version":1}'
>>> row_from_json(row_to_json(row)) == row
True
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring as _q
from typing import Any, NamedTuple

__all__ = ["Row", "COLUMNS", "dumps", "row_to_json", "row_from_json", "row_to_wire"]

COLUMNS = (
    "uid",
    "workspace",
    "id",
    "action",
    "actor",
    "targets",
    "metadata",
    "timestamp",
    "version",
)


class Row(NamedTuple):
    """A stored event: the same columns in every store (ARCHITECTURE.md). JSON fields are strings.

    ``id`` is the stream key (the seed's event ``id``, ``event_id`` when reading a stream).
    """

    uid: str
    workspace: str
    id: str
    action: str
    actor: str  # JSON object
    targets: str  # JSON array, '[]' when empty, never NULL
    metadata: str | None  # JSON object or NULL
    timestamp: int  # ms since epoch, UTC
    version: int
    position: int | None = None  # commit order, on stores that have one


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def dumps(value: Any) -> str:
    """Compact JSON, as stored in every store's JSON columns.

    >>> dumps({"a": [1, "é"]})
    '{"a":[1,"é"]}'
    """
    return _dumps(value)


def row_to_wire(row: Row, *, omit_empty_workspace: bool = False) -> str:
    """A row as one wire JSON object, its JSON columns spliced in as stored (never re-parsed):
    what a client sends after the facade validated and encoded the event once.
    ``omit_empty_workspace`` leaves out a ``""`` workspace, so a server files the row in the
    workspace of the caller's key."""
    workspace = "" if omit_empty_workspace and not row.workspace else f'"workspace":{_q(row.workspace)},'
    return (
        f'{{"uid":{_q(row.uid)},{workspace}"id":{_q(row.id)},'
        f'"action":{_q(row.action)},"actor":{row.actor or "{}"},"targets":{row.targets or "[]"},'
        f'"metadata":{row.metadata or "null"},"timestamp":{int(row.timestamp)},"version":{int(row.version)}}}'
    )


def row_to_json(row: Row) -> dict[str, Any]:
    """A row as the JSON object of the wire (HTTP APIs, NDJSON): JSON columns parsed, no schema
    applied. Use :func:`auditbird.codec.decode` for a typed event."""
    return {
        "uid": row.uid,
        "workspace": row.workspace,
        "id": row.id,
        "action": row.action,
        "actor": json.loads(row.actor) if row.actor else {},
        "targets": json.loads(row.targets) if row.targets else [],
        "metadata": json.loads(row.metadata) if row.metadata else None,
        "timestamp": row.timestamp,
        "version": row.version,
    }


def row_from_json(data: dict[str, Any]) -> Row:
    """The inverse of :func:`row_to_json` (a wire event back to a row), without validation."""
    metadata = data.get("metadata")
    return Row(
        data["uid"],
        data.get("workspace", ""),
        data["id"],
        data["action"],
        _dumps(data.get("actor") or {"id": "", "name": "system"}),
        _dumps(data.get("targets") or []),
        None if metadata is None else _dumps(metadata),
        data["timestamp"],
        data.get("version", 1),
    )
