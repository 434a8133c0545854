"""Input -> Event: the one place events are validated (shape, action schema, limits)."""

from __future__ import annotations

import gc
import math
import weakref
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_json

from ._errors import AuditValidationError, Problem
from .actions import ActionRegistry
from .event import Event, within_bounds

__all__ = ["Limits", "validate_event", "validate_events", "problems_from_pydantic"]


@dataclass(frozen=True)
class Limits:
    """Size limits on metadata, WorkOS's by default. Every one can be raised or lowered."""

    max_keys: int = 50
    max_key_length: int = 40
    max_string_length: int = 500
    max_depth: int = 10
    max_array_length: int = 1_000
    # The whole event as JSON, in bytes: the service's per-event body limit (1 MiB), so the
    # library, the CLI and the service agree. Reads of multi-megabyte rows are slow everywhere.
    max_event_bytes: int = 1024 * 1024


DEFAULT_LIMITS = Limits()
# The largest envelope the event model accepts, in characters: 100 targets of at most
# 256 + 64 + 256 characters, an actor of 576, id, action, uid and workspace, plus punctuation.
_ENVELOPE_BOUND = 100 * 640 + 640 + 256 + 128 + 128 + 128 + 200

# How far a cheap estimate of an event's size (characters of its strings, a few bytes per
# number) can undershoot its JSON in bytes: escapes and UTF-8 grow a character to at most 6.
_ESTIMATE_FACTOR = 6


_PATTERN_MESSAGES = {
    "action": "action {value!r} is not in `resource.verb` form (e.g. 'monitor.down')",
    "id": "`id` must name the stream, e.g. 'monitor:1'; it is blank",
    "uid": "may contain only letters, digits and _.:@/+=- (a UUID is best)",
    "workspace": "may contain only letters, digits and _.:@/+=-",
}


def problems_from_pydantic(exc: ValidationError, prefix: str = "", index: int | None = None) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        loc = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field; remove it (or put it in `metadata`)"
        elif err["type"] == "string_pattern_mismatch" and not prefix:
            msg = _PATTERN_MESSAGES.get(str(err["loc"][-1]), msg).format(value=err.get("input"))
        out.append(Problem(loc, msg, index))
    return out


def _check_json(value: Any, loc: str, limits: Limits, depth: int, out: list[Problem]) -> int:
    """Walk JSON-like metadata once: JSON-serialisable, and within the limits.

    Returns an estimate of its JSON size in characters (see ``_ESTIMATE_FACTOR``). Scalars are
    checked inline in the loops (no call per value): this runs for every event.
    """
    # `type(...) is dict` first: the common case, without the ABC machinery of a Mapping check.
    if type(value) is dict or isinstance(value, Mapping):
        if len(value) > limits.max_keys:
            out.append(Problem(loc, f"{len(value)} keys; at most {limits.max_keys} per object"))
        max_key, max_str = limits.max_key_length, limits.max_string_length
        size = 2
        for key, item in value.items():
            if type(key) is not str:
                out.append(Problem(loc, f"key {key!r} is not a string; JSON keys are strings"))
                continue
            size += len(key) + 4
            if len(key) > max_key:
                out.append(Problem(f"{loc}.{key[:20]}…", f"key of {len(key)} characters; at most {max_key}"))
            kind = type(item)
            if kind is str:
                size += len(item) + 2
                if len(item) > max_str:
                    out.append(
                        Problem(f"{loc}.{key}", f"string of {len(item)} characters; at most {max_str}")
                    )
            elif kind is int:
                size += 20 if -_BIG < item < _BIG else _int_size(item)
            elif kind is not bool and item is not None:
                size += _check_value(item, f"{loc}.{key}", limits, depth + 1, out)
            else:
                size += 5
        return size
    return _check_value(value, loc, limits, depth, out)


_BIG = 10**18


def _int_size(value: int) -> int:
    return 20 if -_BIG < value < _BIG else value.bit_length() // 3 + 2


def _check_value(value: Any, loc: str, limits: Limits, depth: int, out: list[Problem]) -> int:
    if value is None or isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return _int_size(value)
    if isinstance(value, str):
        if len(value) > limits.max_string_length:
            out.append(Problem(loc, f"string of {len(value)} characters; at most {limits.max_string_length}"))
        return len(value) + 2
    if isinstance(value, float):
        if not math.isfinite(value):
            out.append(Problem(loc, f"{value} is not valid JSON; use a finite number or null"))
        return 25
    if depth >= limits.max_depth:
        out.append(Problem(loc, f"nested deeper than {limits.max_depth} levels"))
        return 0
    if isinstance(value, Mapping):
        return _check_json(value, loc, limits, depth, out)
    if isinstance(value, list | tuple):
        if len(value) > limits.max_array_length:
            out.append(Problem(loc, f"{len(value)} items; at most {limits.max_array_length}"))
        size = 2
        for i, item in enumerate(value):
            size += _check_value(item, f"{loc}.{i}", limits, depth + 1, out) + 1
        return size
    out.append(Problem(loc, f"{type(value).__name__} is not JSON-serialisable; use a string or number"))
    return 0


def _check_size(fields: dict[str, Any], metadata_size: int, limits: Limits, out: list[Problem]) -> None:
    """The whole event within ``limits.max_event_bytes``, checked before anything is encoded.

    The estimate is cheap and never undershoots by more than ``_ESTIMATE_FACTOR``; only an
    event that could be over the limit is measured exactly. The envelope (id, actor, targets,
    ...) counts as its largest valid size: the event model bounds every field of it, and an
    envelope beyond those bounds is refused by the model anyway."""
    envelope = _ENVELOPE_BOUND
    limit = limits.max_event_bytes
    if (metadata_size + envelope + 200) * _ESTIMATE_FACTOR <= limit:
        return
    try:
        size = len(to_json({k: v for k, v in fields.items() if k != "metadata"}, fallback=str))
        size += len(to_json(fields.get("metadata"), fallback=str))
    except (PydanticSerializationError, ValueError):  # other checks name what cannot be JSON
        return
    if size > limit:
        out.append(
            Problem(
                "",
                f"event of {size:,} bytes as JSON; at most {limit:,} per event "
                "(raise Limits(max_event_bytes=...) if you mean it, or store large data elsewhere "
                "and keep a reference in metadata)",
            )
        )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a batch is built: thousands of small objects that all stay
    alive would be scanned again and again (~40% of the time) with nothing to free."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


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
    raise AuditValidationError(problems, write=True)


def validate_events(
    items: Iterable[Mapping[str, Any] | Event],
    registry: ActionRegistry,
    *,
    strict: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    workspace: str | None = None,
) -> list[Event]:
    """Validate a batch: every problem of every item is reported, with its index.

    The batch is validated per action in one pydantic-core call (a list of that action's
    metadata, then a list of envelopes): one trip into Rust instead of two per event. An item
    with a problem is validated again on its own, so its report is the same as alone.
    """
    items = list(items)
    events: list[Event | None] = [None] * len(items)
    alone: list[int] = []  # items to validate one by one: those with a problem, or suspected
    with gc_paused():
        staged: list[tuple[int, dict[str, Any]]] = []
        by_model: dict[type[BaseModel], list[tuple[int, dict[str, Any]]]] = {}
        for i, item in enumerate(items):
            # A plain dict (JSON input) is never a built Event: no call to find that out.
            trusted = (
                None if type(item) is dict else _trusted_event(item, registry, strict, limits, workspace)
            )
            if trusted is not None:
                events[i] = trusted
                continue
            prepared = _prepare(item, registry, strict, limits, workspace)
            if prepared is None or prepared[2]:
                alone.append(i)
                continue
            fields, model, _ = prepared
            staged.append((i, fields))
            if model is not None:
                by_model.setdefault(model, []).append((i, fields))
        suspect: set[int] = set()
        for model, group in by_model.items():
            try:
                checked = _list_adapter(model).validate_python([f["metadata"] for _, f in group])
            except ValidationError:
                suspect.update(i for i, _ in group)
                continue
            for (_, fields), metadata in zip(group, checked, strict=True):
                fields["metadata"] = metadata
        envelopes = [(i, fields) for i, fields in staged if i not in suspect]
        try:
            built = _list_adapter(Event).validate_python([fields for _, fields in envelopes])
        except ValidationError:
            alone.extend(i for i, _ in envelopes)
        else:
            for (i, _), event in zip(envelopes, built, strict=True):
                events[i] = event
        alone.extend(suspect)
        problems: list[Problem] = []
        for i in sorted(alone):
            result = _collect(items[i], registry, strict, limits, workspace, i)
            if isinstance(result, Event):
                events[i] = result
            else:
                problems.extend(result)
    if problems:
        raise AuditValidationError(problems, write=True)
    return events  # type: ignore[return-value]  # every index was filled, or problems raised


_ADAPTERS: weakref.WeakKeyDictionary[type[BaseModel], TypeAdapter[Any]] = weakref.WeakKeyDictionary()


def _list_adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    """``TypeAdapter(list[model])``, built once per model (building one takes milliseconds)."""
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(list[model])  # type: ignore[valid-type]
    return adapter


def _trusted_event(
    data: object, registry: ActionRegistry, strict: bool, limits: Limits, workspace: str | None
) -> Event | None:
    """``data`` itself when it is an :class:`Event` pydantic built (so its envelope was
    validated) whose metadata is already its action's model and within the limits: nothing
    to validate again. None sends it down the full path (which reports any problem).

    An ``Event`` from ``model_construct`` skipped pydantic, so its envelope is checked here
    again, cheaply, against the model's own bounds."""
    if type(data) is not Event or data.__dict__.get("schema_error") is not None or not within_bounds(data):
        return None
    if workspace is not None and data.workspace != workspace:
        return None
    latest = registry.latest_version(data.action)
    metadata = data.metadata
    if latest is None:
        if strict or not (metadata is None or isinstance(metadata, Mapping)):
            return None
        raw: Any = metadata
    else:
        model = registry.get(data.action, data.version)
        if model is None or type(metadata) is not model:
            return None
        raw = metadata.model_dump(mode="json", exclude_unset=True)
    found: list[Problem] = []
    size = _check_json(raw, "metadata", limits, 0, found) if raw is not None else 4
    if found or (size + _ENVELOPE_BOUND + 200) * _ESTIMATE_FACTOR > limits.max_event_bytes:
        return None
    return data


def _prepare(
    data: Mapping[str, Any] | Event,
    registry: ActionRegistry,
    strict: bool,
    limits: Limits,
    workspace: str | None,
) -> tuple[dict[str, Any], type[BaseModel] | None, list[Problem]] | None:
    """The fields of the envelope (``metadata`` raw, or already the model's instance), the
    metadata model still to validate it with, and the problems found before any model ran;
    None for an input that is not an object at all."""
    # Plain dicts (JSON input) first, and the metadata checks below likewise: isinstance against
    # an ABC or a pydantic model class goes through Python-level __instancecheck__ hooks.
    if type(data) is dict:
        pass
    elif isinstance(data, Event):
        data = {**data.model_dump(exclude={"schema_error", "metadata"}), "metadata": data.metadata}
    elif not isinstance(data, Mapping):
        return None
    fields = dict(data)
    problems: list[Problem] = []
    if workspace is not None and fields.setdefault("workspace", workspace) != workspace:
        problems.append(Problem("workspace", f"must be {workspace!r} (the log's workspace)"))
        fields["workspace"] = workspace
    name = fields.get("action")
    latest = registry.latest_version(name) if isinstance(name, str) else None
    raw = fields.get("metadata")
    plain = type(raw) is dict
    if not plain and isinstance(raw, BaseModel):
        raw = raw.model_dump(mode="json", exclude_unset=True)
    metadata_size = 4
    if raw is not None:  # limits apply to what will be stored
        metadata_size = _check_json(raw, "metadata", limits, 0, problems)
    if (metadata_size + _ENVELOPE_BOUND + 200) * _ESTIMATE_FACTOR > limits.max_event_bytes:
        _check_size(fields, metadata_size, limits, problems)  # could be over: measure it
    model: type[BaseModel] | None = None
    if latest is None:
        if strict and isinstance(name, str):
            problems.append(
                Problem(
                    "action",
                    f"{name!r} is not a registered action and this log is strict; "
                    "register it with @action(...) or load its module with --actions",
                )
            )
        elif raw is not None and not plain and not isinstance(raw, Mapping):
            problems.append(Problem("metadata", f"must be a JSON object, got {type(raw).__name__}"))
    else:
        assert isinstance(name, str)
        version = fields.get("version", latest)  # a registered action defaults to its newest shape
        found = registry.get(name, version) if isinstance(version, int) else None
        if found is None and isinstance(version, int) and not isinstance(version, bool):
            problems.append(
                Problem("version", f"{name!r} has no schema version {version} (latest is {latest})")
            )
        elif found is not None:
            fields["version"] = version
            given = fields.get("metadata")
            if type(given) is dict or not isinstance(given, found):
                model = found
                fields["metadata"] = raw if raw is not None else {}
    return fields, model, problems


def _collect(
    data: Mapping[str, Any] | Event,
    registry: ActionRegistry,
    strict: bool,
    limits: Limits,
    workspace: str | None,
    index: int | None,
) -> Event | list[Problem]:
    """The event, or every problem with it (envelope and metadata together)."""
    trusted = _trusted_event(data, registry, strict, limits, workspace)
    if trusted is not None:
        return trusted
    prepared = _prepare(data, registry, strict, limits, workspace)
    if prepared is None:
        return [Problem("", f"an event is a JSON object, got {type(data).__name__}", index)]
    fields, model, problems = prepared
    if model is not None:
        try:
            fields["metadata"] = model.model_validate(fields["metadata"])
        except ValidationError as exc:
            problems.extend(problems_from_pydantic(exc, prefix="metadata"))
            fields["metadata"] = None
    try:
        event = Event.model_validate(fields)
    except ValidationError as exc:
        problems.extend(problems_from_pydantic(exc))
    if problems:
        return [Problem(p.loc, p.msg, index) for p in problems]
    return event
