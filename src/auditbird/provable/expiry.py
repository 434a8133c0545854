"""Which gone events ``verify`` may call "expired": those a retention run accounts for.

``retention_expired`` says which leaf ranges retention removed, but it is a plain table:
whoever can write the file could delete an event and add a row for it. So a range counts only
if the run it names left a ``retention.apply`` event (actor ``auditbird:retention``) that is
itself a verified leaf of the tree, later than every range of the run, and whose
``leaf_ranges_sha256`` is the SHA-256 of all the ranges the table holds for that run. Anything
else is reported as "missing" at the first leaf it claimed.

Ranges arrive by ascending ``lo`` (one pass over the table, each run hashed as its ranges go
by); memory is one hash state per run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from ..retention_sqlite import RUN_ACTION, RUN_ACTOR_ID, range_line
from ..row import Row

__all__ = ["ExpiryCheck", "run_event"]


Ranges = Iterator[tuple[int, int, str]]


def run_event(row: Row) -> tuple[str, frozenset[tuple[int, int]] | None] | None:
    """A retention run's event: its ``leaf_ranges_sha256`` and, when the event lists every
    range, that list (to point at the one range a forger added); else None (any other row)."""
    if row.action != RUN_ACTION or not row.metadata:
        return None
    try:
        actor, metadata = json.loads(row.actor), json.loads(row.metadata)
    except ValueError:
        return None
    if not isinstance(actor, dict) or actor.get("id") != RUN_ACTOR_ID or not isinstance(metadata, dict):
        return None
    digest, listed = metadata.get("leaf_ranges_sha256"), metadata.get("leaf_ranges")
    if not isinstance(digest, str):
        return None
    if not isinstance(listed, list) or len(listed) != metadata.get("leaf_ranges_total"):
        return digest, None
    try:
        return digest, frozenset((int(lo), int(hi)) for lo, hi in listed)
    except (TypeError, ValueError):
        return digest, None


class ExpiryCheck:
    """Fed every leaf in order: :meth:`claims` (is this gone leaf retention's?) and :meth:`saw`
    (a verified event); at the end :meth:`problem` says whether every claim is accounted for."""

    def __init__(self, ranges: Callable[[], Ranges]) -> None:
        self._again = ranges  # a fresh pass, only to point at a forged range
        self._ranges = ranges()
        self._current: tuple[int, int, str] | None = None
        self._done = False
        self._hashes: dict[str, Any] = {}  # run uid -> sha256 of its ranges so far
        self._top: dict[str, int] = {}  # run uid -> highest hi of its ranges
        self._first: dict[str, int] = {}  # run uid -> first leaf counted as expired by it
        self._runs: dict[str, tuple[int, Any]] = {}  # verified run events: uid -> (leaf, run_event)

    def _next(self) -> None:
        found = next(self._ranges, None)
        if found is None:
            self._done, self._current = True, None
            return
        lo, hi, run = found
        self._hashes.setdefault(run, hashlib.sha256()).update(range_line(lo, hi))
        self._top[run] = max(self._top.get(run, 0), hi)
        self._current = found

    def claims(self, i: int, data: Any, tree: Any) -> bool:
        """Whether leaf ``i`` is listed as expired and its row is indeed gone."""
        while not self._done and (self._current is None or self._current[1] <= i):
            self._next()
        current = self._current
        if current is None or not current[0] <= i < current[1] or tree is None:
            return False
        if data is not None and data[0] == tree[0]:  # the row is still there: not expired
            return False
        self._first.setdefault(current[2], i)
        return True

    def saw(self, i: int, data: Any) -> None:
        """Leaf ``i`` verified; ``data[3]`` is :func:`run_event` of its row."""
        if data[3] is not None:
            self._runs[data[2]] = (i, data[3])

    def unsigned(self, size: int) -> bool:
        """Whether a run that accounts for an expiry is past the checkpoint's ``size``."""
        return any(self._runs[run][0] >= size for run in self._first if run in self._runs)

    def problem(self) -> tuple[int, str] | None:
        """``(leaf, why)`` of the first expiry no verified run event accounts for, else None."""
        while not self._done:
            self._next()  # a run's digest covers all its ranges, used or not
        bad: list[tuple[int, str]] = []
        for run, first in self._first.items():
            event, named = self._runs.get(run), f"run {run!r}"
            if event is None:
                why = f"no retention.apply event in the tree accounts for it (listed under {named})"
            elif event[0] < self._top[run]:
                why = f"retention_expired lists it under {named}, whose event comes before the range"
            elif event[1][0] != self._hashes[run].hexdigest():
                why = f"the ranges retention_expired lists for {named} are not the ones its event recorded"
                first = self._unlisted(run, event[1][1], first)
            else:
                continue
            bad.append((first, why))
        return min(bad) if bad else None

    def _unlisted(self, run: str, listed: frozenset[tuple[int, int]] | None, first: int) -> int:
        """The first range of ``run`` its event does not list, if the event lists them all."""
        if listed is None:
            return first
        for lo, hi, other in self._again():
            if other == run and (lo, hi) not in listed:
                return lo
        return first
