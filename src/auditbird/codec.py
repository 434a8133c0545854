"""Event <-> row: the one place events are encoded and decoded.

The seed's ``schema.transform(JSON.stringify)`` / ``z.preprocess(JSON.parse, schema)`` pair.
Every store goes through here; a store never sees an ``Event``, a schema never sees a row.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring as _q
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_json

from ._errors import AuditValidationError, Problem
from .actions import ActionRegistry
from .erasure.seal import decode_sealed, holds_sealed
from .event import Event
from .row import Row, dumps, row_from_json, row_to_json, row_to_wire

__all__ = ["encode", "encode_many", "decode", "dumps", "row_to_json", "row_from_json", "row_to_wire"]


def encode(event: Event) -> Row:
    """Event -> row, with actor, targets and metadata as JSON strings (targets '[]' if empty).

    Raises :class:`AuditValidationError` for text no store can hold (a lone surrogate such as
    ``"\\ud800"`` passes str validation but is not UTF-8)."""
    try:
        return _encode(event)
    except (PydanticSerializationError, UnicodeEncodeError) as exc:
        bad = [
            name
            for name in ("id", "action", "uid", "workspace", "actor", "targets", "metadata")
            if not _utf8_safe(getattr(event, name))
        ]
        raise AuditValidationError(
            [Problem(name, "contains text that is not valid Unicode (a lone surrogate)") for name in bad]
            or [Problem("", f"cannot be encoded: {exc}")]
        ) from None


def encode_many(events: list[Event]) -> list[Row]:
    """:func:`encode` for a batch, in one pass: the serialisers are looked up once, and the
    plain-text columns of the whole batch are checked for lone surrogates in one go.

    Raises :class:`AuditValidationError` naming the index and field of each event that cannot
    be encoded (the batch's failure path encodes each event alone to find them)."""
    rows: list[Row] = []
    append = rows.append
    texts: list[str] = []
    keep_text = texts.append
    try:
        for event in events:
            targets = event.targets
            metadata = event.metadata
            if metadata is None:
                metadata_json = None
            elif isinstance(metadata, BaseModel):
                metadata_json = metadata.__pydantic_serializer__.to_json(
                    metadata, exclude_unset=True
                ).decode()
            else:
                metadata_json = to_json(metadata).decode()
            keep_text(event.id)
            keep_text(event.action)
            keep_text(event.uid)
            keep_text(event.workspace)
            append(
                Row(
                    event.uid,
                    event.workspace,
                    event.id,
                    event.action,
                    to_json(event.actor, exclude_none=True).decode(),
                    to_json(targets, exclude_none=True).decode() if targets else "[]",
                    metadata_json,
                    event.timestamp,
                    event.version,
                )
            )
        "".join(texts).encode("utf-8")
    except (PydanticSerializationError, UnicodeEncodeError):
        problems: list[Problem] = []
        for i, event in enumerate(events):
            try:
                encode(event)
            except AuditValidationError as exc:
                problems.extend(Problem(p.loc, p.msg, i) for p in exc.problems)
        raise AuditValidationError(problems or [Problem("", "the batch cannot be encoded")]) from None
    return rows


def _utf8_safe(value: Any) -> bool:
    try:
        (value if isinstance(value, str) else to_json(value, fallback=str).decode()).encode("utf-8")
    except (UnicodeEncodeError, PydanticSerializationError, ValueError):
        return False
    return True


def _encode(event: Event) -> Row:
    # pydantic-core's serializer (Rust): compact JSON, UTF-8 kept, the hot path of every publish.
    actor_json = to_json(event.actor, exclude_none=True).decode()
    targets_json = to_json(event.targets, exclude_none=True).decode() if event.targets else "[]"
    metadata = event.metadata
    if metadata is None:
        metadata_json = None
    elif isinstance(metadata, BaseModel):
        metadata_json = metadata.model_dump_json(exclude_unset=True)
    else:
        metadata_json = to_json(metadata).decode()
    # Plain-text columns are not serialised above: check them for lone surrogates in one go.
    (event.id + event.action + event.uid + event.workspace).encode("utf-8")
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
    # -- erasure hook (auditbird.erasure): personal values stored sealed are opened here, on the
    # one path every read takes; a row without one costs two substring checks.
    if holds_sealed(row):
        return decode_sealed(row, registry, _decode_plain)
    return _decode_plain(row, registry)


def _decode_plain(row: Row, registry: ActionRegistry) -> Event:
    try:
        return _decode_fast(row, registry)
    except (ValidationError, ValueError, TypeError):
        return _decode_careful(row, registry)


def _decode_fast(row: Row, registry: ActionRegistry) -> Event:
    """The common case in pydantic-core: the stored JSON columns are spliced into one
    envelope and parsed and validated in Rust, without a Python ``json.loads``. Anything
    unusual (upcasting, bad JSON, metadata that does not fit) raises, for the careful path."""
    latest = registry.latest_version(row.action)
    model = registry.get(row.action, row.version) if latest is not None else None
    if latest is not None and (model is None or row.version != latest):
        raise ValueError("needs upcasting or has no schema of its version")
    event = Event.model_validate_json(
        f'{{"uid":{_q(row.uid)},"workspace":{_q(row.workspace)},"id":{_q(row.id)},'
        f'"action":{_q(row.action)},"actor":{row.actor or "{}"},"targets":{row.targets or "[]"},'
        f'"timestamp":{int(row.timestamp)},"version":{int(row.version)},"metadata":null}}'
    )
    if model is not None:
        metadata: Any = model.model_validate_json(row.metadata or "{}")
    else:
        metadata = json.loads(row.metadata) if row.metadata else None
        if metadata is not None and not isinstance(metadata, dict):
            raise ValueError("metadata is not a JSON object")
    # `metadata` is typed Any on the (frozen) model: setting it after validation skips no check.
    event.__dict__["metadata"] = metadata
    return event


def _decode_careful(row: Row, registry: ActionRegistry) -> Event:
    """Every step in Python, so each failure can be marked instead of raised."""
    metadata = _loads(row.metadata) if row.metadata else None
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
    if latest is None and metadata is not None and not isinstance(metadata, dict):
        schema_error = "stored metadata is not a JSON object"  # free-form metadata is an object
    fields = {
        "uid": row.uid,
        "workspace": row.workspace,
        "id": row.id,
        "action": row.action,
        "actor": _loads(row.actor) if row.actor else {},
        "targets": _loads(row.targets) if row.targets else [],
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


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # not JSON at all: keep the raw text, the event will be marked
