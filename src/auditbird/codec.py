"""Event <-> row: the one place events are encoded and decoded.

The seed's ``schema.transform(JSON.stringify)`` / ``z.preprocess(JSON.parse, schema)`` pair.
Every store goes through here; a store never sees an ``Event``, a schema never sees a row.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from .actions import ActionRegistry
from .event import Event
from .stores.base import Row

__all__ = ["encode", "decode", "dumps", "row_to_json", "row_from_json"]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def dumps(value: Any) -> str:
    """Compact JSON, as stored in every store's JSON columns."""
    return _dumps(value)


def encode(event: Event) -> Row:
    """Event -> row, with actor, targets and metadata as JSON strings (targets '[]' if empty)."""
    actor = event.actor
    actor_json = (
        _dumps({"id": actor.id, "name": actor.name})
        if actor.type is None
        else _dumps({"id": actor.id, "name": actor.name, "type": actor.type})
    )
    targets_json = _dumps([t.model_dump(exclude_none=True) for t in event.targets]) if event.targets else "[]"
    metadata = event.metadata
    if metadata is None:
        metadata_json = None
    elif isinstance(metadata, BaseModel):
        metadata_json = metadata.model_dump_json(exclude_unset=True)
    else:
        metadata_json = _dumps(metadata)
    return Row(
        event.uid,
        event.workspace,
        event.id,
        event.action,
        actor_json,
        targets_json,
        metadata_json,
        event.timestamp,
        event.version,
    )


def decode(row: Row, registry: ActionRegistry) -> Event:
    """Row -> Event: JSON-parse, upcast to the newest registered version, validate.

    A row whose metadata no longer fits its schema comes back with its raw metadata and
    ``schema_error`` set: never dropped, and the read does not fail.
    """
    metadata = json.loads(row.metadata) if row.metadata else None
    version = row.version
    schema_error: str | None = None
    latest = registry.latest_version(row.action)
    if latest is not None:
        raw = metadata if metadata is not None else {}
        target_version = version
        while target_version < latest:
            step = registry.upcaster(row.action, target_version)
            if step is None:
                break
            try:
                raw = step(dict(raw))
            except Exception as exc:  # an upcaster bug must not make the log unreadable
                schema_error = f"upcaster {row.action} v{target_version} failed: {exc}"
                break
            target_version += 1
        model = registry.get(row.action, target_version) if schema_error is None else None
        if model is not None:
            try:
                metadata = model.model_validate(raw)
                version = target_version
            except ValidationError as exc:
                schema_error = f"stored metadata does not fit {row.action} v{target_version}: " + "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
                )
    fields = {
        "uid": row.uid,
        "workspace": row.workspace,
        "id": row.id,
        "action": row.action,
        "actor": json.loads(row.actor) if row.actor else {},
        "targets": json.loads(row.targets) if row.targets else [],
        "metadata": metadata,
        "timestamp": row.timestamp,
        "version": version,
        "schema_error": schema_error,
    }
    try:
        return Event.model_validate(fields)
    except ValidationError as exc:
        # Written by another tool or an older, looser version: still readable, and marked.
        fields["schema_error"] = f"stored row does not fit the event model: {exc.errors()[0]['msg']}"
        return Event.model_construct(**fields)


def row_to_json(row: Row) -> dict[str, Any]:
    """A row as the JSON object of the wire (HTTP APIs, NDJSON): JSON columns parsed, no schema
    applied. Use :func:`decode` for a typed event."""
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
