"""Change tracking: an event that records a resource's state before and after a change.

The metadata of a change event always has exactly three keys, so a viewer can lay the two
states side by side and highlight what moved (a *state* here; "snapshot" in
auditbird means only a projection snapshot, :mod:`auditbird.snapshots`)::

    {"before": {...} | None, "after": {...} | None, "changed": ["name", "url"]}

``*.create``/``*.created`` needs ``after``, ``*.delete``/``*.deleted`` needs ``before``,
``*.update``/``*.updated`` needs both, and an update that changes nothing is not an event.
Secrets never reach the store: fields named like a secret are masked, and ``mask=``/``drop=``
name more (a bare name matches that key at any depth; ``a.b`` names one nested key).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from ._errors import AuditValidationError, Problem

__all__ = ["ChangeSet", "change_event", "capture_state", "MASK", "SECRET_KEY_PATTERN"]

MASK = "[masked]"
# Keys masked whatever the caller configures: a token in an audit log is a leaked token.
SECRET_KEY_PATTERN = re.compile(
    r"(?i)(password|passwd|secret|token|api[_-]?key|private[_-]?key|authorization|credential|cookie)"
)
_CREATE = {"create", "created"}
_DELETE = {"delete", "deleted"}
_UPDATE = {"update", "updated"}


class ChangeSet(BaseModel):
    """The metadata schema of change events (``monitor.updated`` and friends)."""

    model_config = ConfigDict(extra="forbid")

    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    changed: list[str] = []


def capture_state(
    value: Any, *, mask: Iterable[str] = (), drop: Iterable[str] = (), mask_secrets: bool = True
) -> dict[str, Any] | None:
    """A JSON-ready copy of ``value`` (a mapping, pydantic model or dataclass) with the
    ``drop`` fields removed and the ``mask`` fields (and secret-looking keys) masked.

    >>> capture_state({"url": "https://x", "api_key": "s3cret", "notes": "n"}, drop=["notes"])
    {'url': 'https://x', 'api_key': '[masked]'}
    """
    if value is None:
        return None
    data = _as_dict(value)
    return _scrub(data, frozenset(mask), frozenset(drop), mask_secrets, "")


def change_event(
    action: str,
    event_id: str,
    *,
    before: Any = None,
    after: Any = None,
    actor: Mapping[str, Any] | None = None,
    targets: list[Mapping[str, Any]] | None = None,
    mask: Iterable[str] = (),
    drop: Iterable[str] = (),
    mask_secrets: bool = True,
    **fields: Any,
) -> dict[str, Any] | None:
    """The event dict for a change, or None for an update that changes nothing.

    ``fields`` (``timestamp``, ``workspace``, ``uid``, ...) go on the event as given. Targets
    default to the stream the event_id names (``monitor:1`` -> ``[{"id": "1", "type": "monitor"}]``).

    >>> change_event("monitor.updated", "monitor:1", before={"url": "a"}, after={"url": "b"})["metadata"]
    {'before': {'url': 'a'}, 'after': {'url': 'b'}, 'changed': ['url']}
    >>> change_event("monitor.updated", "monitor:1", before={"url": "a"}, after={"url": "a"}) is None
    True
    """
    verb = action.rsplit(".", 1)[-1]
    missing = []
    if verb in _CREATE | _UPDATE and after is None:
        missing.append(Problem("after", f"{action!r} records a new state: pass after=..."))
    if verb in _DELETE | _UPDATE and before is None:
        missing.append(Problem("before", f"{action!r} records the old state: pass before=..."))
    if before is None and after is None and not missing:
        missing.append(Problem("before", "a change needs before=..., after=... or both"))
    if missing:
        raise AuditValidationError(missing)
    mask, drop = frozenset(mask), frozenset(drop)
    raw_before = None if before is None else _as_dict(before)
    raw_after = None if after is None else _as_dict(after)
    # Compared before masking, so a rotated token still shows up as changed (with both sides masked).
    changed = _changed(raw_before, raw_after, drop)
    if raw_before is not None and raw_after is not None and not changed:
        return None
    event: dict[str, Any] = {
        "id": event_id,
        "action": action,
        "metadata": {
            "before": None if raw_before is None else _scrub(raw_before, mask, drop, mask_secrets, ""),
            "after": None if raw_after is None else _scrub(raw_after, mask, drop, mask_secrets, ""),
            "changed": changed,
        },
        **fields,
    }
    if actor is not None:
        event["actor"] = dict(actor)
    if targets is not None:
        event["targets"] = list(targets)
    elif ":" in event_id:
        kind, _, ident = event_id.partition(":")
        if kind and ident:
            event["targets"] = [{"id": ident, "type": kind}]
    return event


def _changed(before: dict[str, Any] | None, after: dict[str, Any] | None, drop: frozenset[str]) -> list[str]:
    b, a = before or {}, after or {}
    keys = sorted(set(b) | set(a))
    return [k for k in keys if k not in drop and (k not in b or k not in a or b[k] != a[k])]


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise AuditValidationError(
        [
            Problem(
                "before/after",
                f"a before/after state is a mapping, pydantic model or dataclass, not {type(value).__name__}",
            )
        ]
    )


def _scrub(
    data: dict[str, Any], mask: frozenset[str], drop: frozenset[str], secrets: bool, prefix: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key in drop or path in drop:
            continue
        if key in mask or path in mask or (secrets and SECRET_KEY_PATTERN.search(str(key))):
            out[key] = MASK if value is not None else None
        elif isinstance(value, Mapping):
            out[key] = _scrub(dict(value), mask, drop, secrets, f"{path}.")
        elif isinstance(value, list):
            out[key] = [
                _scrub(dict(v), mask, drop, secrets, f"{path}.") if isinstance(v, Mapping) else v
                for v in value
            ]
        else:
            out[key] = value
    return out
