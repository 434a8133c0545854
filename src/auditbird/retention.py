"""Retention: a per-workspace maximum age for events, applied without breaking provable history.

>>> from auditbird import AuditLog
>>> from auditbird.retention import set_policy, apply_retention
>>> log = AuditLog("sqlite:///:memory:", workspace="acme")
>>> set_policy(log, "365d").period
'365d'
>>> apply_retention(log, dry_run=True).removed
0

An expired event's *data* (its row, its targets, its text-index entries) is removed; its leaf
hash stays in the Merkle tree, so younger events' inclusion proofs and every consistency proof
still hold, and ``auditbird verify`` reports the removed leaves as "expired by retention
policy" rather than "missing". Each run that removed something is itself recorded as an event
(``retention.apply``) in the same transaction, listing what it removed; so is every change of
policy (``retention.set``). On Tinybird the datasource's TTL does the removing
(:mod:`auditbird.retention_tinybird`). See docs/provable-history.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .log import AuditLog
from .stores.sqlite import SQLiteStore

__all__ = [
    "RetentionPolicy",
    "RetentionReport",
    "RetentionError",
    "parse_period",
    "set_policy",
    "get_policy",
    "policies",
    "apply_retention",
    "apply_all",
    "expired_leaves",
    "expired_ranges",
]

_UNITS = {"h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000, "y": 365 * 86_400_000}
_PERIOD = re.compile(r"([1-9][0-9]{0,5})([hdwy])")
MIN_AGE_MS = 3_600_000  # an hour: anything shorter is a typo, not a policy
MAX_AGE_MS = 100 * 365 * 86_400_000


class RetentionError(ValueError):
    """A period that does not parse, or a store that cannot apply retention itself."""


@dataclass(frozen=True)
class RetentionPolicy:
    workspace: str
    period: str  # as the user wrote it, e.g. "365d"
    max_age_ms: int


@dataclass(frozen=True)
class RetentionReport:
    """What one run removed (or, with ``dry_run``, would remove) from one workspace."""

    workspace: str
    period: str
    cutoff: int  # events with a timestamp before this (ms since epoch) expire
    removed: int
    oldest: int | None  # the oldest and newest removed timestamps
    newest: int | None
    dry_run: bool = False
    event_uids: tuple[str, ...] = ()  # the retention.apply events that record the run (one per chunk)

    def message(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        where = f"workspace {self.workspace!r}"
        if not self.removed:
            return f"{where}: nothing older than {_iso(self.cutoff)} (policy {self.period})"
        return (
            f"{where}: {verb} {self.removed} events older than {_iso(self.cutoff)} (policy {self.period}); "
            f"oldest {_iso(self.oldest)}, newest {_iso(self.newest)}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "period": self.period,
            "cutoff": self.cutoff,
            "removed": self.removed,
            "oldest": self.oldest,
            "newest": self.newest,
            "dry_run": self.dry_run,
            "event_uids": list(self.event_uids),
        }


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_period(text: str) -> int:
    """``"365d"`` -> milliseconds. Units: h (hours), d (days), w (weeks), y (365 days)."""
    match = _PERIOD.fullmatch(text.strip().lower())
    if match is None:
        raise RetentionError(
            f"retention period {text!r}: write a whole number and a unit, e.g. 365d, 12w, 48h or 7y"
        )
    ms = int(match.group(1)) * _UNITS[match.group(2)]
    if not MIN_AGE_MS <= ms <= MAX_AGE_MS:
        raise RetentionError(f"retention period {text!r}: choose between 1h and 100y")
    return ms


def _sqlite(log_or_store: Any) -> SQLiteStore:
    store = log_or_store.store if isinstance(log_or_store, AuditLog) else log_or_store
    if not isinstance(store, SQLiteStore):
        raise RetentionError(
            f"retention is applied by auditbird on a SQLite log; {type(store).__name__} is not one "
            "(on Tinybird the datasource's TTL does it: `auditbird retention datafiles DIR 365d`)"
        )
    return store


def _workspace(log_or_store: Any, workspace: str | None) -> str:
    if workspace is not None:
        return workspace
    return log_or_store.workspace if isinstance(log_or_store, AuditLog) else ""


def set_policy(
    log_or_store: Any, period: str | None, *, workspace: str | None = None
) -> RetentionPolicy | None:
    """Keep the workspace's events for ``period`` (``None``: forever). Recorded as an event."""
    from . import retention_sqlite

    ms = None if period is None else parse_period(period)
    ws = _workspace(log_or_store, workspace)
    retention_sqlite.store_policy(_sqlite(log_or_store), ws, period, ms)
    return None if period is None or ms is None else RetentionPolicy(ws, period, ms)


def get_policy(log_or_store: Any, *, workspace: str | None = None) -> RetentionPolicy | None:
    from . import retention_sqlite

    ws = _workspace(log_or_store, workspace)
    found = retention_sqlite.read_policies(_sqlite(log_or_store), ws)
    return found[0] if found else None


def policies(log_or_store: Any) -> list[RetentionPolicy]:
    """Every workspace's policy in the store."""
    from . import retention_sqlite

    return retention_sqlite.read_policies(_sqlite(log_or_store), None)


def apply_retention(
    log_or_store: Any, *, workspace: str | None = None, now: int | None = None, dry_run: bool = False
) -> RetentionReport:
    """Remove the workspace's events older than its policy (see the module docstring).
    Raises :class:`RetentionError` if the workspace has no policy."""
    from . import retention_sqlite

    store, ws = _sqlite(log_or_store), _workspace(log_or_store, workspace)
    policy = get_policy(store, workspace=ws)
    if policy is None:
        raise RetentionError(
            f"workspace {ws!r} has no retention policy: set one first (`auditbird retention set 365d`)"
        )
    return retention_sqlite.apply(store, policy, now=now, dry_run=dry_run)


def apply_all(log_or_store: Any, *, now: int | None = None, dry_run: bool = False) -> list[RetentionReport]:
    """:func:`apply_retention` for every workspace that has a policy (``serve``'s schedule)."""
    from . import retention_sqlite

    store = _sqlite(log_or_store)
    return [retention_sqlite.apply(store, p, now=now, dry_run=dry_run) for p in policies(store)]


def expired_leaves(store: Any, workspace: str) -> Iterator[int]:
    """The leaf indexes of the workspace's tree whose events retention removed, ascending
    (``auditbird verify`` tells them from deleted ones). Empty for stores without retention."""
    from . import retention_sqlite

    if not isinstance(store, SQLiteStore):
        return iter(())
    return retention_sqlite.expired_leaves(store, workspace)


def expired_ranges(store: Any, workspace: str) -> Iterator[tuple[int, int, str]]:
    """``(lo, hi, run_uid)``: the leaf ranges retention_expired claims, by ascending ``lo``. A
    claim is only a hint: ``verify`` checks it against the run's ``retention.apply`` event."""
    from . import retention_sqlite

    if not isinstance(store, SQLiteStore):
        return iter(())
    return retention_sqlite.expired_ranges(store, workspace)
