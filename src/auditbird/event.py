"""The event: the one contract every layer shares (ARCHITECTURE.md, "The event")."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

import uuid_utils
from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

__all__ = [
    "Actor",
    "Target",
    "Event",
    "new_uid",
    "now_ms",
    "within_bounds",
    "ACTION_PATTERN",
    "MAX_TIMESTAMP",
]

# `resource.verb`, with room for namespaces (`audit_log.viewed`, `billing.plan.changed`).
ACTION_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z][A-Za-z0-9_-]*)+$"
_ACTION_RE = re.compile(ACTION_PATTERN)
# 9999-12-31T23:59:59.999Z: the last millisecond every store (and ClickHouse DateTime64) can hold.
MAX_TIMESTAMP = 253_402_300_799_999
_KEY_PATTERN = r"^[A-Za-z0-9_.:@/+=-]*$"
_KEY_RE = re.compile(_KEY_PATTERN)


def now_ms() -> int:
    """Milliseconds since the epoch, UTC: the seed's ``Date.now()``."""
    return time.time_ns() // 1_000_000


def new_uid() -> str:
    """A UUIDv7: time-ordered, so it is a good index key and a same-millisecond tie-breaker."""
    return str(uuid_utils.uuid7())


class Actor(BaseModel):
    """Who triggered the event. ``type`` (user, api_key, system, ...) is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(max_length=256)] = ""
    name: Annotated[str, Field(max_length=256)] = "system"
    type: Annotated[str | None, Field(max_length=64)] = None


class Target(BaseModel):
    """A resource the action affected. The seed uses both ``{id, name}`` and ``{id, type}``.

    Both shapes validate and are stored exactly as given; :attr:`kind` reads whichever is set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=256)]
    type: Annotated[str | None, Field(min_length=1, max_length=64)] = None
    name: Annotated[str | None, Field(min_length=1, max_length=256)] = None

    @model_validator(mode="after")
    def _needs_type_or_name(self) -> Target:
        if self.type is None and self.name is None:
            raise ValueError("a target needs `type` (or the seed's `name`) beside `id`")
        return self

    @property
    def kind(self) -> str:
        """The target's resource type: ``type`` if given, else the seed's ``name``."""
        return self.type if self.type is not None else (self.name or "")


class Event(BaseModel):
    """One immutable audit event.

    ``metadata`` is an instance of the action's registered model when the action has one,
    otherwise the free-form JSON object that was published. ``schema_error`` is set only on
    events read back whose stored metadata no longer fits their schema: they are returned
    with the raw metadata rather than dropped.

    >>> Event(id="monitor:1", action="monitor.down").actor
    Actor(id='', name='system', type=None)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Constraints are patterns (checked in Rust) rather than Python validators: this model is
    # validated once per published event and once per event read, so it is the hot path.
    id: Annotated[str, Field(min_length=1, max_length=256, pattern=r"\S")]
    action: Annotated[str, Field(min_length=3, max_length=128, pattern=ACTION_PATTERN)]
    actor: Actor = Field(default_factory=Actor)
    targets: Annotated[list[Target], Field(max_length=100)] = Field(default_factory=list)
    # Evaluated per event, at construction: never once at import.
    timestamp: Annotated[StrictInt, Field(ge=0, le=MAX_TIMESTAMP)] = Field(default_factory=now_ms)
    version: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = 1
    metadata: Any = None
    uid: Annotated[str, Field(min_length=1, max_length=128, pattern=_KEY_PATTERN)] = Field(
        default_factory=new_uid
    )
    workspace: Annotated[str, Field(max_length=128, pattern=_KEY_PATTERN)] = ""
    schema_error: str | None = Field(default=None, exclude=True)

    @property
    def resource(self) -> str:
        """The action's resource: ``monitor`` for ``monitor.down``."""
        return self.action.rsplit(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: targets keep the shape they were given in.

        Never raises: a row read back that no longer fits the event model (built with
        ``model_construct`` by the codec, ``schema_error`` set) comes out as stored, so one
        damaged row is reported, not a failed read of the whole page or export.
        """
        if self.schema_error is not None and not self._fits_model():
            return self._as_stored()
        try:
            data = self.model_dump(mode="json", warnings=False)
            if isinstance(self.metadata, BaseModel):  # what was published, not every default
                data["metadata"] = self.metadata.model_dump(mode="json", exclude_unset=True)
            data["actor"] = self.actor.model_dump(mode="json", exclude_none=True)
            data["targets"] = [t.model_dump(mode="json", exclude_none=True) for t in self.targets]
        except Exception:  # an Event someone else built with model_construct
            return self._as_stored()
        if self.schema_error is not None:
            data["schema_error"] = self.schema_error
        return data

    def _fits_model(self) -> bool:
        return (
            isinstance(self.actor, Actor)
            and isinstance(self.targets, list)
            and all(isinstance(t, Target) for t in self.targets)
            and all(isinstance(getattr(self, f, None), str) for f in ("id", "action", "uid", "workspace"))
            and all(type(getattr(self, f, None)) is int for f in ("timestamp", "version"))
        )

    def _as_stored(self) -> dict[str, Any]:
        data = {name: _plain(getattr(self, name, None)) for name in type(self).model_fields}
        data["schema_error"] = self.schema_error or "this event does not fit the event model"
        return data


def _plain(value: Any) -> Any:
    """``value`` as JSON-ready data, whatever it holds (a damaged row's columns)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True, warnings=False)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def within_bounds(event: Event) -> bool:
    """Whether ``event`` holds what :class:`Event` would accept: its bounds, checked in plain
    Python (flat and cheap: publishing an ``Event`` the caller built runs it instead of
    validating it again; one from ``model_construct`` skipped pydantic). Keep it in step with
    the model: tests/test_batch_validation.py checks both agree at every bound."""
    d = event.__dict__
    id_, action, uid, ws = d.get("id"), d.get("action"), d.get("uid"), d.get("workspace")
    ts, version, actor, targets = d.get("timestamp"), d.get("version"), d.get("actor"), d.get("targets")
    if not (type(id_) is str and type(action) is str and type(uid) is str and type(ws) is str):
        return False
    if not (type(ts) is int and type(version) is int and type(actor) is Actor and type(targets) is list):
        return False
    return (
        0 < len(id_) <= 256
        and not id_.isspace()
        and 3 <= len(action) <= 128
        and _ACTION_RE.fullmatch(action) is not None
        and 0 < len(uid) <= 128
        and _KEY_RE.fullmatch(uid) is not None
        and len(ws) <= 128
        and (not ws or _KEY_RE.fullmatch(ws) is not None)
        and 0 <= ts <= MAX_TIMESTAMP
        and 1 <= version <= 1_000_000
        and _text(actor.__dict__.get("id"), 0, 256)
        and _text(actor.__dict__.get("name"), 0, 256)
        and _optional_text(actor.__dict__.get("type"), 64)
        and len(targets) <= 100
        and all(_target_fits(t) for t in targets)
    )


def _target_fits(target: object) -> bool:
    if type(target) is not Target:
        return False
    d = target.__dict__
    kind, name = d.get("type"), d.get("name")
    return (
        _text(d.get("id"), 1, 256)
        and (kind is not None or name is not None)
        and _optional_text(kind, 64)
        and _optional_text(name, 256)
    )


def _text(value: object, low: int, high: int) -> bool:
    return type(value) is str and low <= len(value) <= high


def _optional_text(value: object, high: int) -> bool:
    return value is None or (type(value) is str and 0 < len(value) <= high)
