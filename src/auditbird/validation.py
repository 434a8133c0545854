"""Input -> Event: the one place events are validated (shape, action schema, limits)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ._errors import AuditValidationError, Problem
from .actions import ActionRegistry
from .event import Event

__all__ = ["Limits", "validate_event", "validate_events", "problems_from_pydantic"]


@dataclass(frozen=True)
class Limits:
    """Size limits on metadata, WorkOS's by default. Every one can be raised or lowered."""

    max_keys: int = 50
    max_key_length: int = 40
    max_string_length: int = 500
    max_depth: int = 10
    max_array_length: int = 1_000


DEFAULT_LIMITS = Limits()


def problems_from_pydantic(exc: ValidationError, prefix: str = "", index: int | None = None) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        loc = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field; remove it (or put it in `metadata`)"
        out.append(Problem(loc, msg, index))
    return out


def _check_json(value: Any, loc: str, limits: Limits, depth: int, out: list[Problem]) -> None:
    """Walk JSON-like metadata once: JSON-serialisable, and within the limits."""
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        if len(value) > limits.max_string_length:
            out.append(Problem(loc, f"string of {len(value)} characters; at most {limits.max_string_length}"))
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            out.append(Problem(loc, f"{value} is not valid JSON; use a finite number or null"))
        return
    if depth >= limits.max_depth:
        out.append(Problem(loc, f"nested deeper than {limits.max_depth} levels"))
        return
    if isinstance(value, Mapping):
        if len(value) > limits.max_keys:
            out.append(Problem(loc, f"{len(value)} keys; at most {limits.max_keys} per object"))
        for key, item in value.items():
            if not isinstance(key, str):
                out.append(Problem(loc, f"key {key!r} is not a string; JSON keys are strings"))
                continue
            if len(key) > limits.max_key_length:
                out.append(
                    Problem(
                        f"{loc}.{key[:20]}…",
                        f"key of {len(key)} characters; at most {limits.max_key_length}",
                    )
                )
            _check_json(item, f"{loc}.{key}", limits, depth + 1, out)
        return
    if isinstance(value, list | tuple):
        if len(value) > limits.max_array_length:
            out.append(Problem(loc, f"{len(value)} items; at most {limits.max_array_length}"))
        for i, item in enumerate(value):
            _check_json(item, f"{loc}.{i}", limits, depth + 1, out)
        return
    out.append(Problem(loc, f"{type(value).__name__} is not JSON-serialisable; use a string or number"))


def validate_event(
    data: Mapping[str, Any] | Event,
    registry: ActionRegistry,
    *,
    strict: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    workspace: str | None = None,
    index: int | None = None,
) -> Event:
    """Validate one input against the event model, the action's schema and the limits.

    ``workspace``, when given, is forced onto the event (a scoped log or API key decides the
    tenant, not the caller's payload). Raises :class:`AuditValidationError` naming every
    bad field.
    """
    problems = _collect(data, registry, strict, limits, workspace, index)
    if isinstance(problems, Event):
        return problems
    raise AuditValidationError(problems)


def validate_events(
    items: Iterable[Mapping[str, Any] | Event],
    registry: ActionRegistry,
    *,
    strict: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    workspace: str | None = None,
) -> list[Event]:
    """Validate a batch: every problem of every item is reported, with its index."""
    events: list[Event] = []
    problems: list[Problem] = []
    for i, item in enumerate(items):
        result = _collect(item, registry, strict, limits, workspace, i)
        if isinstance(result, Event):
            events.append(result)
        else:
            problems.extend(result)
    if problems:
        raise AuditValidationError(problems)
    return events


def _collect(
    data: Mapping[str, Any] | Event,
    registry: ActionRegistry,
    strict: bool,
    limits: Limits,
    workspace: str | None,
    index: int | None,
) -> Event | list[Problem]:
    if isinstance(data, Event):
        event = data
        version_given = True
    elif isinstance(data, Mapping):
        version_given = "version" in data
        if workspace is not None and data.get("workspace", workspace) != workspace:
            return [Problem("workspace", f"must be {workspace!r} (the log's workspace)", index)]
        try:
            event = Event.model_validate(data)
        except ValidationError as exc:
            return problems_from_pydantic(exc, index=index)
    else:
        return [Problem("", f"an event is a JSON object, got {type(data).__name__}", index)]

    updates: dict[str, Any] = {}
    if workspace is not None and event.workspace != workspace:
        updates["workspace"] = workspace
    latest = registry.latest_version(event.action)
    if latest is None:
        if strict:
            return [
                Problem(
                    "action",
                    f"{event.action!r} is not a registered action and this log is strict; "
                    "register it with @action(...) or load its module with --actions",
                    index,
                )
            ]
        metadata = event.metadata
        if metadata is not None and not isinstance(metadata, Mapping):
            return [
                Problem(
                    "metadata",
                    f"must be a JSON object, got {type(metadata).__name__}",
                    index,
                )
            ]
    else:
        version = event.version if version_given else latest
        model = registry.get(event.action, version)
        if model is None:
            return [
                Problem(
                    "version",
                    f"{event.action!r} has no schema version {version} (latest is {latest})",
                    index,
                )
            ]
        raw = event.metadata if event.metadata is not None else {}
        if isinstance(raw, model):
            metadata_model: BaseModel = raw
        else:
            if isinstance(raw, BaseModel):
                raw = raw.model_dump()
            try:
                metadata_model = model.model_validate(raw)
            except ValidationError as exc:
                return problems_from_pydantic(exc, prefix="metadata", index=index)
        updates["metadata"] = metadata_model
        if version != event.version:
            updates["version"] = version
        metadata = metadata_model.model_dump(mode="json", exclude_unset=True)

    problems: list[Problem] = []
    if metadata is not None:
        _check_json(metadata, "metadata", limits, 0, problems)
    if problems:
        return [Problem(p.loc, p.msg, index) for p in problems]
    return event.model_copy(update=updates) if updates else event
