"""What to read: filters, order and an opaque keyset cursor. Stores translate it, never widen it."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from ._errors import AuditValidationError, Problem
from .event import now_ms

__all__ = ["Query", "encode_cursor", "decode_cursor", "parse_time", "MAX_LIMIT", "MAX_TIME_CHARS"]

MAX_LIMIT = 10_000
# The longest ISO 8601 time is ~35 characters ("2026-01-31T02:00:00.123456+05:30"); a cap well
# above it keeps every parse below linear in a bounded input.
MAX_TIME_CHARS = 64


@dataclass(frozen=True)
class Query:
    """A read: every filter is ANDed; ``actions`` matches any of its items.

    ``after`` is the keyset position ``(timestamp, uid)`` of the last row already seen: the
    next page starts strictly after it in the query's order, so page 1,000 costs what page 1
    costs. ``after_position`` reads in commit order on stores that keep one.
    """

    workspace: str = ""
    event_id: str | None = None
    actions: tuple[str, ...] = ()
    actor_id: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: int | None = None  # inclusive, ms
    until: int | None = None  # exclusive, ms
    text: str | None = None  # substring of the event id or the metadata JSON
    uid: str | None = None
    limit: int | None = 100
    after: tuple[int, str] | None = None
    # "desc"/"asc": by (timestamp, uid); "position": commit order, keyed by ``after_position``.
    order: Literal["desc", "asc", "position"] = "desc"
    after_position: int | None = None


def encode_cursor(timestamp: int, uid: str) -> str:
    """An opaque, URL-safe cursor for the keyset position after ``(timestamp, uid)``."""
    raw = json.dumps([timestamp, uid], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    bad = AuditValidationError(
        [Problem("cursor", "not a cursor this log issued; pass `next_cursor` back unchanged")]
    )
    if len(cursor) > 512:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or isinstance(value[0], bool)
        or not isinstance(value[1], str)
        or not _INT64[0] <= value[0] <= _INT64[1]
    ):
        raise bad
    return value[0], value[1]


_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


_INT64 = (-(2**63), 2**63 - 1)  # what every store's timestamp column holds


def parse_time(value: str | int | datetime, *, field_name: str = "since") -> int:
    """ms since epoch from an int (ms), ``1h``/``30m``/``7d`` (ago), ISO 8601, or a datetime."""
    ms = _parse_time(value, field_name)
    if not _INT64[0] <= ms <= _INT64[1]:
        raise AuditValidationError([Problem(field_name, f"{ms} is out of range for a time in ms")])
    return ms


def _parse_time(value: str | int | datetime, field_name: str) -> int:
    if isinstance(value, bool):
        raise AuditValidationError([Problem(field_name, "a time, not a boolean")])
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)
    text = str(value).strip()
    if len(text) > MAX_TIME_CHARS:
        raise AuditValidationError(
            [Problem(field_name, f"{len(text):,} characters; a time is at most {MAX_TIME_CHARS}")]
        )
    if text.isascii() and text.isdigit():
        return int(text)
    if text == "now":
        return now_ms()
    ago = _duration_ms(text)
    if ago is not None:
        return now_ms() - ago
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AuditValidationError(
            [
                Problem(
                    field_name,
                    f"{text!r} is not a time; use ms since epoch, 15m/1h/7d (ago) "
                    "or ISO 8601 like 2026-01-31T02:00:00Z",
                )
            ]
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _duration_ms(text: str) -> int | None:
    """``15m``, ``1h ago``, ``7d``: ASCII digits, optional spaces, a unit, an optional ``ago``.

    A single left-to-right pass (no regex): a hostile value cannot make it backtrack."""
    body = text[:-3].rstrip() if text.endswith("ago") else text
    digits = 0
    while digits < len(body) and "0" <= body[digits] <= "9":
        digits += 1
    unit = body[digits:].lstrip(" ")
    if digits == 0 or unit not in _UNIT_MS:
        return None
    return int(body[:digits]) * _UNIT_MS[unit]
