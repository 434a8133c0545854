"""Which events a stream delivers: its workspace, then a filter (actions, target, actor).

A filter with an actor rule is an *alert*: ``StreamFilter(actions=["monitor.deleted"],
actor_not_in=["u_alice", "u_bob"])`` delivers a monitor deletion only when someone outside
that group made it. Alerts and streams share one delivery path; only the filter differs.

>>> from auditbird.row import Row
>>> row = Row("u1", "acme", "monitor:1", "monitor.deleted", '{"id":"u_eve","name":"Eve"}', "[]", None, 1, 1)
>>> StreamFilter(actions=("monitor.deleted",), actor_not_in=("u_alice",)).matches(row)
True
>>> StreamFilter(actions=("monitor.deleted",), actor_not_in=("u_eve",)).matches(row)
False
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..row import Row

__all__ = ["StreamFilter"]

_MAX_ITEMS = 1_000  # a filter is configuration, not data: bound what one can hold


@dataclass(frozen=True)
class StreamFilter:
    """Every field narrows; an empty filter delivers every event of the workspace."""

    actions: tuple[str, ...] = ()
    target_type: str | None = None
    target_id: str | None = None
    actor_in: tuple[str, ...] = ()
    actor_not_in: tuple[str, ...] = ()
    _actions: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("actions", "actor_in", "actor_not_in"):
            values = tuple(getattr(self, name))
            if len(values) > _MAX_ITEMS:
                raise ValueError(f"a stream filter holds at most {_MAX_ITEMS} {name}; got {len(values)}")
            if any(not isinstance(v, str) or not v for v in values):
                raise ValueError(f"filter {name}: every value must be a non-empty string")
            object.__setattr__(self, name, values)
        if self.actor_in and self.actor_not_in:
            raise ValueError("a filter takes actor_in or actor_not_in, not both")
        object.__setattr__(self, "_actions", frozenset(self.actions))

    @property
    def is_alert(self) -> bool:
        """A rule on who acted: the stream delivers only the events that break it."""
        return bool(self.actor_in or self.actor_not_in)

    def matches(self, row: Row) -> bool:
        if self._actions and row.action not in self._actions:
            return False
        if self.actor_in or self.actor_not_in:
            actor_id = _actor_id(row)
            if self.actor_in and actor_id not in self.actor_in:
                return False
            if self.actor_not_in and actor_id in self.actor_not_in:
                return False
        if self.target_type is not None or self.target_id is not None:
            return any(
                (self.target_type is None or t.get("type") == self.target_type)
                and (self.target_id is None or t.get("id") == self.target_id)
                for t in _targets(row)
            )
        return True

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if not k.startswith("_") and v not in ((), None)}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> StreamFilter:
        data: dict[str, Any] = json.loads(text or "{}")
        return cls(
            actions=tuple(data.get("actions", ())),
            target_type=data.get("target_type"),
            target_id=data.get("target_id"),
            actor_in=tuple(data.get("actor_in", ())),
            actor_not_in=tuple(data.get("actor_not_in", ())),
        )

    def describe(self) -> str:
        parts = []
        if self.actions:
            parts.append("action in " + ",".join(self.actions))
        if self.target_type is not None:
            parts.append(f"target type {self.target_type}")
        if self.target_id is not None:
            parts.append(f"target id {self.target_id}")
        if self.actor_in:
            parts.append("actor in " + ",".join(self.actor_in))
        if self.actor_not_in:
            parts.append("actor not in " + ",".join(self.actor_not_in))
        return "; ".join(parts) or "every event"


def _actor_id(row: Row) -> str:
    try:
        actor = json.loads(row.actor) if row.actor else {}
    except ValueError:
        return ""
    return str(actor.get("id", "")) if isinstance(actor, dict) else ""


def _targets(row: Row) -> list[dict[str, Any]]:
    try:
        targets = json.loads(row.targets) if row.targets else []
    except ValueError:
        return []
    return [t for t in targets if isinstance(t, dict)] if isinstance(targets, list) else []
